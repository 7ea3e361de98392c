"""The rate budget: one Protocol the session calls, and the implementations of it.

No HTTP here: the session turns answers into :class:`Observation` values and
asks a :class:`RateBudget` for a :class:`Permit` before every attempt.
"""

from __future__ import annotations

from ._cap import RateCap
from ._local import LocalBudget
from ._pacer import Learner, Plan
from ._protocol import BudgetSnapshot, Lane, Observation, Permit, RateBudget, Shape

__all__ = [
    "BudgetSnapshot",
    "Lane",
    "Learner",
    "LocalBudget",
    "Observation",
    "Permit",
    "Plan",
    "RateBudget",
    "RateCap",
    "Shape",
]

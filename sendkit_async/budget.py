"""The rate budget every call spends, and the clock it waits on: for those who share or replace it.

Most programs never touch these: ``SendKit(api_key=...)`` makes a
:class:`LocalBudget` for the process, and ``SendKit(redis=...)`` a
:class:`RedisBudget` shared by every process on the key. Build one yourself
to share a budget between clients, cap a client's rate (:class:`RateCap`),
or keep a lane for interactive calls (:class:`Lane`); implement
:class:`RateBudget` to pace by other rules, and :class:`Clock` to run the
SDK on virtual time (:class:`sendkit_async.testing.FakeClock`).
"""

from __future__ import annotations

import typing as _typing

from ._budget import BudgetSnapshot, Lane, LocalBudget, Observation, Permit, RateBudget, RateCap, Shape
from ._clock import Clock, SystemClock
from ._config import REDIS_URL_SCHEMES
from ._extra import from_redis_extra as _from_redis_extra

if _typing.TYPE_CHECKING:
    from ._budget._redis import RedisBudget


def __getattr__(name: str) -> _typing.Any:
    """``RedisBudget`` is imported on first use: it needs the ``redis`` extra."""
    if name == "RedisBudget":
        return _from_redis_extra("sendkit_async._budget._redis", name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "REDIS_URL_SCHEMES",
    "BudgetSnapshot",
    "Clock",
    "Lane",
    "LocalBudget",
    "Observation",
    "Permit",
    "RateBudget",
    "RateCap",
    "RedisBudget",
    "Shape",
    "SystemClock",
]

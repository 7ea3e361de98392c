"""Admission: who may send now, given a :class:`~._pacer.Plan` and the state every caller shares.

This is the whole rule, and ``budget.lua`` states it again for the Redis
budget; ``tests/test_admission.py`` runs the same traces through both, so the
two stay one rule. It is the generic cell rate algorithm (:mod:`._gcra`)
with no burst tolerance, at the plan's interval and with its ``catchup``
(a token bucket of burst 1 would refuse a send woken late; this lets it
go, and books the next from the slot it had). On top of it: the plan's pause, its cap on
requests in flight, and its precise statement (sends past its credit wait
for its reset, and with a window's ``quota`` and ``period``, each window
from then on allows its quota more).
"""

from __future__ import annotations

import math

import attrs

from ._gcra import booked, due
from ._pacer import Plan
from ._protocol import NEVER, Lane

__all__ = ["DUE", "Admission", "decide", "grants", "take"]

# A slot this close is due: a bulk caller takes it now rather than nap 2 ms.
DUE = 0.002


@attrs.define
class Admission:
    """The state shared by everyone sending on one key.

    Attributes:
        tat: the theoretical arrival time: the earliest the next send may leave.
        seq: sends admitted so far (the next one's sequence number).
        in_flight: sends admitted and not yet answered.
    """

    tat: float = NEVER
    seq: int = 0
    in_flight: int = 0


def decide(state: Admission, plan: Plan, now: float) -> float:
    """The earliest moment the next send may leave (``inf``: wait for an answer first)."""
    if plan.cap and state.in_flight >= plan.cap:
        return math.inf
    slot = due(state.tat, max(now, plan.pause_until))
    if plan.credit >= 0:
        spent = state.seq - plan.credit_seq  # sends after the statement's own, this one included
        over = spent + plan.drain * max(slot - plan.credit_from, 0.0) - plan.credit
        if over > 0 and plan.quota > 0 and plan.period > 0:
            # Past the credit, each window from the hold on allows its quota more.
            slot = max(slot, plan.hold_until + (math.ceil(over / plan.quota) - 1) * plan.period)
        elif over > 0 and slot < plan.hold_until:
            slot = plan.hold_until
    return slot


def grants(lane: Lane, slot: float, now: float) -> bool:
    """Whether a caller of ``lane`` takes the slot :func:`decide` gave at once.

    An interactive caller reserves the next slot, however far (so it goes
    ahead of every waiting batch, in any process); a bulk caller takes only
    a slot that is due, and otherwise waits and asks again.
    """
    return not math.isinf(slot) and (lane is Lane.INTERACTIVE or slot <= now + DUE)


def take(state: Admission, plan: Plan, at: float) -> int:
    """Book a send leaving at ``at`` (a slot :func:`decide` gave, or later); return its sequence number."""
    state.tat = booked(state.tat, at, plan.interval, plan.catchup)
    seq = state.seq
    state.seq += 1
    state.in_flight += 1
    return seq

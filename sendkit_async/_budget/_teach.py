"""Where an answer meets a learner, for both budgets: the one place server times change domain.

A learner (:mod:`._pacer`) keeps one time domain, the budget's own: the
monotonic clock of a :class:`LocalBudget`, Redis' clock for a
:class:`RedisBudget` (the only clock every process on a key shares). The
answers state times as epoch seconds (:class:`Observation`); :func:`learn`
turns them into the budget's time through the answer's arrival, and nothing
else converts. :func:`snapshot_of` is what either budget shows of its state.
"""

from __future__ import annotations

from ._admit import Admission
from ._pacer import Learner, Plan
from ._protocol import RATE_LIMITED, BudgetSnapshot, Lane, Observation, Shape

__all__ = ["learn", "snapshot_of"]


def learn(
    learner: Learner,
    observation: Observation,
    *,
    seq: int,
    sent: float,
    now: float,
    wall: float,
    lane: Lane = Lane.BULK,
) -> None:
    """Teach ``learner`` one answer, turning its epoch times into the budget's time ``now``.

    Server times are epoch seconds; they become the budget's time through the
    answer's arrival (``wall`` is the epoch time of ``now``), so a step of the
    wall clock between the two cannot shift them. A refusal that was not a
    429 (a limiter's 503 or 403) is learned from as one.
    """
    status = observation.status
    if status is None:
        return

    def local(moment: float | None) -> float | None:
        return None if moment is None else now + (moment - wall)

    learner.observe(
        now,
        seq=seq,
        sent=sent,
        status=RATE_LIMITED if observation.refused else status,
        received=local(observation.received_at),
        limit=observation.limit,
        remaining=observation.remaining,
        reset=local(observation.reset_at),
        reset_resolution=observation.reset_resolution,
        reset_server=observation.reset_server,
        window=observation.window,
        retry=local(observation.retry_at),
        blocked=local(observation.blocked_until),
        interactive=lane is Lane.INTERACTIVE,
    )


def snapshot_of(
    learner: Learner, state: Admission, plan: Plan, *, now: float, waiting: int
) -> BudgetSnapshot:
    """What a budget shows of a learner and its admission state."""
    remaining = None
    said = learner.statement
    if said.remaining >= 0:
        remaining = max(said.remaining - (state.seq - said.seq - 1), 0)
    return BudgetSnapshot(
        shape=Shape(learner.shape),
        limit=learner.limit or None,
        remaining=remaining,
        # A window's quota at its start still averages a period per quota.
        interval=plan.interval or (plan.period / plan.quota if plan.quota else 0.0),
        paused_for=max(plan.pause_until - now, 0.0),
        waiting=waiting,
        in_flight=state.in_flight,
        burst=plan.quota if plan.period else 1,
    )

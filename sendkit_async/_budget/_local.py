"""The in-process rate budget: the client's default, one per client and event loop."""

from __future__ import annotations

import itertools
import math

from sendkit_async._clock import Clock, SystemClock
from sendkit_async._config import DEFAULT_MAX_RETRY_WAIT
from sendkit_async._errors import ValidationError

from ._admit import Admission, decide, take
from ._gate import Gate
from ._pacer import Learner, Plan
from ._protocol import BudgetSnapshot, Lane, Observation, Permit, refuse_second_key
from ._teach import learn, snapshot_of

__all__ = ["LocalBudget"]


class LocalBudget:
    """Paces every request of the clients that share it, learned from the server's answers.

    Callers queue at one gate, interactive ones ahead of bulk ones. The caller
    at the gate waits for its slot (see :mod:`._pacer` for what the answers
    teach and :mod:`._admit` for how slots are given), takes it and lets the
    next one in; while it waits, every answer makes it look again, and a bulk
    caller steps back to the head of its lane when an interactive one
    arrives. So a crowd of waiting workers leaves one by one at the paced
    rate, and a single interactive call waits about one send interval even
    while an import keeps the budget full.

    Make one per event loop; it keeps no global state.

    Example:
        >>> budget = LocalBudget()
        >>> client = SendKit(rate_budget=budget)  # doctest: +SKIP
        >>> budget.snapshot().interval  # doctest: +SKIP
        0.1

    Args:
        clock: where it reads the time and sleeps (tests pass a fake one).
        max_pause: the longest shared pause a single 429 may impose.
        share: the part of the server's rate this budget may use (a process
            standing in for a shared budget that went away uses less than 1).

    Raises:
        ValueError: a negative or infinite ``max_pause``, or a share outside (0, 1].
    """

    __slots__ = ("_clock", "_gate", "_key_id", "_learner", "_plan", "_sent", "_state", "_tokens")

    def __init__(
        self, *, clock: Clock | None = None, max_pause: float = DEFAULT_MAX_RETRY_WAIT, share: float = 1.0
    ) -> None:
        if not max_pause >= 0 or math.isinf(max_pause):
            raise ValidationError(f"max_pause must be a finite number of seconds, got {max_pause!r}")
        if not 0 < share <= 1:
            raise ValidationError(f"share must be in (0, 1], got {share!r}")
        self._clock: Clock = clock or SystemClock()
        self._learner = Learner(max_pause=max_pause, share=share)
        self._plan: Plan = self._learner.plan()
        self._state = Admission()
        self._gate = Gate(self._clock)
        self._sent: dict[int, tuple[int, float]] = {}
        self._tokens = itertools.count()
        self._key_id: str | None = None

    def __repr__(self) -> str:
        return f"LocalBudget({self.snapshot()!r})"

    def bind(self, key_id: str) -> None:
        """Remember the key it paces; a second, different key is refused.

        Raises:
            ConfigurationError: the budget already paces another key (each
                key's limit is its own: give each key its own budget).
        """
        refuse_second_key(self._key_id, key_id)
        self._key_id = key_id

    async def acquire(self, lane: Lane = Lane.INTERACTIVE) -> Permit:
        """Wait for this caller's slot; cancellation leaves the queue cleanly."""
        if lane is Lane.INTERACTIVE and self._plan.period:
            # An interactive caller: stop sending windows' quotas at their start (see the pacer).
            self._learner.interactive_at = self._learner.last_seen = self._clock.monotonic()
            self._plan = self._learner.plan()
        seq, now = await self._gate.turn(lane, lambda: self._claim(lane))
        token = next(self._tokens)
        self._sent[token] = (seq, now)
        return Permit(lane=lane, token=token, granted_at=self._clock.wall())

    async def _claim(self, lane: Lane) -> tuple[int, float] | None:
        """Wait (holding the gate) for the slot and take it; ``None`` to step aside."""
        while True:
            now = self._clock.monotonic()
            slot = decide(self._state, self._plan, now)
            if slot <= now:
                return take(self._state, self._plan, now), now
            if lane is Lane.BULK and self._gate.urgent():
                return None
            await self._gate.nap(None if math.isinf(slot) else slot - now)

    async def observe(self, permit: Permit, observation: Observation) -> None:
        """Learn from an answer (or its absence); never waits and never raises."""
        sent = self._sent.pop(permit.token, None)
        if sent is not None:
            self._state.in_flight = max(self._state.in_flight - 1, 0)
            if observation.status is not None:
                now = self._clock.monotonic()
                wall = self._clock.wall()
                learn(
                    self._learner,
                    observation,
                    seq=sent[0],
                    sent=sent[1],
                    now=now,
                    wall=wall,
                    lane=permit.lane,
                )
                self._plan = self._learner.plan()
        self._gate.rouse()

    def snapshot(self) -> BudgetSnapshot:
        """The budget's state now."""
        return snapshot_of(
            self._learner,
            self._state,
            self._plan,
            now=self._clock.monotonic(),
            waiting=self._gate.waiting,
        )

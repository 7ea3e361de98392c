"""The in-process rate budget: the client's default, one per client and event loop."""

from __future__ import annotations

import itertools
import math

from sendkit_async._clock import Clock, SystemClock
from sendkit_async._config import DEFAULT_MAX_RETRY_WAIT

from ._gate import Gate
from ._pacer import Pacer
from ._protocol import BudgetSnapshot, Lane, Observation, Permit

__all__ = ["LocalBudget"]


class LocalBudget:
    """Paces every request of the clients that share it, learned from the server's answers.

    Callers queue at one gate, interactive ones ahead of bulk ones. The caller
    at the gate waits for its slot (see :mod:`._pacer` for how slots are
    chosen), takes it and lets the next one in; while it waits, every answer
    makes it look again, and a bulk caller steps back to the head of its lane
    when an interactive one arrives. So a crowd of waiting workers leaves one
    by one at the paced rate, and a single interactive call waits about one
    send interval even while an import keeps the budget full.

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

    __slots__ = ("_clock", "_gate", "_pacer", "_sent", "_tokens")

    def __init__(
        self, *, clock: Clock | None = None, max_pause: float = DEFAULT_MAX_RETRY_WAIT, share: float = 1.0
    ) -> None:
        if not max_pause >= 0 or math.isinf(max_pause):
            raise ValueError(f"max_pause must be a finite number of seconds, got {max_pause!r}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        self._clock: Clock = clock or SystemClock()
        self._pacer = Pacer(max_pause=max_pause, share=share)
        self._gate = Gate(self._clock)
        self._sent: dict[int, float] = {}
        self._tokens = itertools.count()

    def __repr__(self) -> str:
        return f"LocalBudget({self.snapshot()!r})"

    def bind(self, key_id: str) -> None:
        """Nothing to do: an in-process budget paces the one client (or clients) holding it."""

    async def acquire(self, lane: Lane = Lane.INTERACTIVE) -> Permit:
        """Wait for this caller's slot; cancellation leaves the queue cleanly."""
        now = await self._gate.turn(lane, lambda: self._claim(lane))
        token = next(self._tokens)
        self._sent[token] = now
        return Permit(lane=lane, token=token, granted_at=self._clock.wall())

    async def _claim(self, lane: Lane) -> float | None:
        """Wait (holding the gate) for the slot and take it, returning the time; ``None`` to step aside."""
        while True:
            now = self._clock.monotonic()
            slot = self._pacer.slot(now)
            if slot <= now:
                self._pacer.take(now, slot)
                return now
            if lane is Lane.BULK and self._gate.urgent():
                return None
            await self._gate.nap(None if math.isinf(slot) else slot - now)

    async def observe(self, permit: Permit, observation: Observation) -> None:
        """Learn from an answer (or its absence); never waits and never raises."""
        sent = self._sent.pop(permit.token, None)
        if sent is not None:
            self._learn(sent, observation)
        self._gate.rouse()

    def _learn(self, sent: float, observation: Observation) -> None:
        if observation.status is None:
            self._pacer.release()
            return
        now = self._clock.monotonic()
        # Server times are epoch seconds; turn them into this clock's time via the
        # answer's arrival, so a step of the wall clock cannot shift them.

        def local(moment: float | None) -> float | None:
            return None if moment is None else now + (moment - observation.received_at)

        self._pacer.observe(
            now,
            sent=sent,
            status=observation.status,
            limit=observation.limit,
            remaining=observation.remaining,
            reset=local(observation.reset_at),
            reset_resolution=observation.reset_resolution,
            window=observation.window,
            retry=local(observation.retry_at),
        )

    def snapshot(self) -> BudgetSnapshot:
        """The budget's state now."""
        pacer = self._pacer
        return BudgetSnapshot(
            shape=pacer.shape,
            limit=pacer.limit,
            remaining=pacer.remaining,
            interval=pacer.interval,
            paused_for=max(pacer.pause_until - self._clock.monotonic(), 0.0),
            waiting=self._gate.waiting,
            in_flight=pacer.in_flight,
        )

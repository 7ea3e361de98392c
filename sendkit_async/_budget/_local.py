"""The in-process rate budget: the client's default, one per client and event loop."""

from __future__ import annotations

import collections
import itertools
import math

import anyio

from sendkit_async._clock import Clock, SystemClock
from sendkit_async._config import DEFAULT_MAX_RETRY_WAIT

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

    Raises:
        ValueError: a negative or infinite ``max_pause``.
    """

    __slots__ = ("_clock", "_held", "_pacer", "_queues", "_sent", "_tokens", "_wake")

    def __init__(self, *, clock: Clock | None = None, max_pause: float = DEFAULT_MAX_RETRY_WAIT) -> None:
        if not max_pause >= 0 or math.isinf(max_pause):
            raise ValueError(f"max_pause must be a finite number of seconds, got {max_pause!r}")
        self._clock: Clock = clock or SystemClock()
        self._pacer = Pacer(max_pause=max_pause)
        self._queues: dict[Lane, collections.deque[anyio.Event]] = {
            lane: collections.deque() for lane in Lane
        }
        self._held = False
        self._wake: anyio.Event | None = None
        self._sent: dict[int, float] = {}
        self._tokens = itertools.count()

    def __repr__(self) -> str:
        return f"LocalBudget({self.snapshot()!r})"

    async def acquire(self, lane: Lane = Lane.INTERACTIVE) -> Permit:
        """Wait for this caller's slot; cancellation leaves the queue cleanly."""
        ahead = False
        while True:
            await self._enter(lane, ahead=ahead)
            try:
                now = await self._wait_for_slot(lane)
                if now is not None:
                    self._pacer.take(now)
                    break
            finally:
                self._leave()
            ahead = True  # stepped aside for an interactive caller: first in its lane again
        token = next(self._tokens)
        self._sent[token] = now
        return Permit(lane=lane, token=token, granted_at=self._clock.wall())

    async def _wait_for_slot(self, lane: Lane) -> float | None:
        """Hold the gate until the slot comes (its time), or ``None`` to step aside."""
        while True:
            now = self._clock.monotonic()
            slot = self._pacer.slot(now)
            if slot <= now:
                return now
            if lane is Lane.BULK and self._queues[Lane.INTERACTIVE]:
                return None
            await self._nap(None if math.isinf(slot) else slot - now)

    async def _nap(self, delay: float | None) -> None:
        """Sleep ``delay`` seconds (or until woken when ``None``); an answer or an urgent caller wakes it."""
        wake = self._wake = anyio.Event()
        if delay is None:
            await wake.wait()
            return
        async with anyio.create_task_group() as group:

            async def alarm() -> None:
                await self._clock.sleep(delay)
                wake.set()

            group.start_soon(alarm)
            await wake.wait()
            group.cancel_scope.cancel()

    def _rouse(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    async def observe(self, permit: Permit, observation: Observation) -> None:
        """Learn from an answer (or its absence); never waits and never raises."""
        sent = self._sent.pop(permit.token, None)
        if sent is not None:
            self._learn(sent, observation)
        self._rouse()

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
            waiting=sum(len(queue) for queue in self._queues.values()) + self._held,
            in_flight=pacer.in_flight,
        )

    async def _enter(self, lane: Lane, *, ahead: bool = False) -> None:
        if not self._held and not any(self._queues.values()):
            self._held = True
            await anyio.lowlevel.checkpoint()  # still a cancellation point
            return
        turn = anyio.Event()
        queue = self._queues[lane]
        if ahead:
            queue.appendleft(turn)
        else:
            queue.append(turn)
        if lane is Lane.INTERACTIVE:
            self._rouse()  # a bulk caller holding the gate steps aside
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():
                self._leave()  # the gate was handed to us as we were cancelled: pass it on
            else:
                queue.remove(turn)
            raise

    def _leave(self) -> None:
        for lane in Lane:
            queue = self._queues[lane]
            if queue:
                queue.popleft().set()  # ownership passes straight to the next caller
                return
        self._held = False

"""A fake clock for tests: sleeping advances virtual time instead of waiting."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import anyio
import anyio.lowlevel

__all__ = ["FakeClock"]

T = TypeVar("T")
# Scheduling rounds that must pass with nobody runnable before time jumps.
_SETTLE_ROUNDS = 20
# After real work (a socket call) the awaiting task needs many more rounds to settle.
_SETTLE_AFTER_WORK = 200
# Real one-millisecond sleeps, with nobody runnable and no sleeper, before a deadlock is declared.
_STALL_ROUNDS = 20


class FakeClock:
    """A :class:`~sendkit_async.budget.Clock` that never really waits.

    With ``auto_advance=True`` (the default) every ``sleep(s)`` moves the clock
    forward by ``s`` at once, after one scheduling checkpoint, so retry and
    pacing logic runs at full speed while recording what it would have waited.
    Two sleepers at once make no sense to it, so a limit that races a wait
    (``max_queue_wait``) is not enforced in this mode.
    With ``auto_advance=False`` sleepers block until a test calls
    :meth:`advance`, which lets a test cancel a task in the middle of a wait.

    Example:
        >>> clock = FakeClock()
        >>> client = SendKit(api_key="sk_test", clock=clock)  # doctest: +SKIP
        >>> clock.sleeps  # doctest: +SKIP
        [2.0]
    """

    __slots__ = ("_busy", "_now", "_waiters", "_wall_offset", "_worked", "auto_advance", "sleeps")

    def __init__(
        self, *, start: float = 0.0, wall: float = 1_700_000_000.0, auto_advance: bool = True
    ) -> None:
        self._now = start
        self._wall_offset = wall - start
        self._waiters: list[tuple[float, anyio.Event]] = []
        self.auto_advance = auto_advance
        self.sleeps: list[float] = []
        self._busy = 0
        self._worked = False

    def monotonic(self) -> float:
        """Virtual seconds."""
        return self._now

    def wall(self) -> float:
        """Virtual seconds since the epoch (moves with :meth:`monotonic`)."""
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        """Record the wait, then advance (auto mode) or block until advanced past it."""
        self.sleeps.append(seconds)
        if self.auto_advance:
            await anyio.lowlevel.checkpoint()
            self._now += max(seconds, 0.0)
            return
        event = anyio.Event()
        waiter = (self._now + max(seconds, 0.0), event)
        self._waiters.append(waiter)
        try:
            await event.wait()
        finally:
            if not event.is_set():
                self._waiters.remove(waiter)  # cancelled: forget the deadline

    @property
    def waiting(self) -> int:
        """How many sleepers are blocked (manual mode)."""
        return sum(1 for _, event in self._waiters if not event.is_set())

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Hold virtual time still while real work is out (a call to a real Redis, say).

        :meth:`drive` jumps to the next wake-up only when every task waits on
        this clock; a task awaiting a socket looks idle to it, so wrap such
        awaits in ``with clock.working():``.
        """
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            self._worked = True

    def next_deadline(self) -> float:
        """The earliest time a blocked sleeper wakes (``inf`` when none waits)."""
        return min((deadline for deadline, event in self._waiters if not event.is_set()), default=math.inf)

    async def drive(self, main: Awaitable[T]) -> T:
        """Run ``main`` in virtual time: whenever every task waits on this clock, jump to the next wake-up.

        For code that waits only on this clock and on in-process events (no
        sockets): a simulation of many workers against an in-process server
        runs in milliseconds, in a repeatable order. Needs ``auto_advance=False``.

        Raises:
            RuntimeError: every task is blocked and nothing waits on the clock (a deadlock).
        """
        if self.auto_advance:
            raise RuntimeError("drive() needs FakeClock(auto_advance=False)")
        outcome: list[T] = []
        failure: list[BaseException] = []
        done = anyio.Event()

        async def run() -> None:
            try:
                outcome.append(await main)
            except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group
                failure.append(exc)
            finally:
                done.set()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(run)
            deadlocked = await self._advance_while(done)
            if deadlocked:
                task_group.cancel_scope.cancel()
        if deadlocked:
            raise RuntimeError("every task is blocked and no sleeper waits on the clock")
        if failure:
            raise failure[0]
        return outcome[0]

    async def _advance_while(self, done: anyio.Event) -> bool:
        """Jump from wake-up to wake-up until ``done``; ``True`` if everything blocked instead."""
        stalls = 0
        while not done.is_set():
            rounds, self._worked = (_SETTLE_AFTER_WORK if self._worked else _SETTLE_ROUNDS), False
            for _ in range(rounds):
                await anyio.lowlevel.checkpoint()
            if done.is_set():
                break
            if self._busy or self._worked:
                stalls = 0
                await anyio.sleep(0.0001)  # real work is out: let the loop poll its sockets
                continue
            deadline = self.next_deadline()
            if math.isinf(deadline):
                if stalls >= _STALL_ROUNDS:
                    return True
                stalls += 1
                await anyio.sleep(0.001)  # real callbacks (a socket closing) may still be due
                continue
            stalls = 0
            self.advance(max(deadline - self._now, 0.0))
        return False

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        self._now += seconds
        due = [(deadline, event) for deadline, event in self._waiters if deadline <= self._now]
        self._waiters = [item for item in self._waiters if item not in due]
        for _, event in due:
            event.set()

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleeps={len(self.sleeps)})"

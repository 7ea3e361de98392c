"""A fake clock for tests: sleeping advances virtual time instead of waiting."""

from __future__ import annotations

import anyio
import anyio.lowlevel

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`~sendkit_async.budget.Clock` that never really waits.

    With ``auto_advance=True`` (the default) every ``sleep(s)`` moves the clock
    forward by ``s`` at once, after one scheduling checkpoint, so retry and
    pacing logic runs at full speed while recording what it would have waited.
    Two sleepers at once make no sense to it, so a limit that races a wait
    (``max_queue_wait``) is not enforced in this mode.
    With ``auto_advance=False`` sleepers block until a test calls
    :meth:`advance`, which lets a test cancel a task in the middle of a wait.
    To run many tasks in virtual time (every wait, the loop's own included),
    use :class:`~sendkit_async.testing.VirtualTimeLoop` instead.

    Example:
        >>> clock = FakeClock()
        >>> client = SendKit(api_key="sk_test", clock=clock)  # doctest: +SKIP
        >>> clock.sleeps  # doctest: +SKIP
        [2.0]
    """

    __slots__ = ("_now", "_waiters", "_wall_offset", "auto_advance", "sleeps")

    def __init__(
        self, *, start: float = 0.0, wall: float = 1_700_000_000.0, auto_advance: bool = True
    ) -> None:
        self._now = start
        self._wall_offset = wall - start
        self._waiters: list[tuple[float, anyio.Event]] = []
        self.auto_advance = auto_advance
        self.sleeps: list[float] = []

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

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        self._now += seconds
        due = [(deadline, event) for deadline, event in self._waiters if deadline <= self._now]
        self._waiters = [item for item in self._waiters if item not in due]
        for _, event in due:
            event.set()

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleeps={len(self.sleeps)})"

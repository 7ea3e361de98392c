"""Where the SDK reads the time and sleeps, so tests can substitute a fake clock."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import anyio

from ._groups import BaseExceptionGroup, first_error

__all__ = ["Clock", "SystemClock", "at_most"]

T = TypeVar("T")


class Clock(Protocol):
    """The three time primitives the session and the bulk engine use."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""

    def wall(self) -> float:
        """Seconds since the epoch, to read HTTP dates in ``Retry-After``."""

    async def sleep(self, seconds: float) -> None:
        """Wait; cancellation must interrupt the wait at once."""


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.time`, :func:`anyio.sleep`."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


async def at_most(
    clock: Clock,
    seconds: float | None,
    wait: Callable[[], Awaitable[T]],
    undo: Callable[[T], Awaitable[None]] | None = None,
) -> T | None:
    """``await wait()``, cancelled after ``seconds`` on ``clock``: its result, or ``None`` when cut off.

    ``None`` seconds waits as long as it takes. A result that arrives as the
    time runs out is kept. ``wait`` must be safe to cancel (it takes nothing
    it does not give back), as every budget wait is. A result that arrived
    but cannot be handed over (the caller was cancelled just then) is given
    to ``undo``, shielded, so a budget's permit is never lost.

    A clock whose every sleep returns at once, moving its time on
    (``FakeClock(auto_advance=True)``), has no notion of two sleepers at once:
    a timer would fire first whatever it raced. There the wait is not cut off;
    ``FakeClock(auto_advance=False)`` with ``drive()`` runs the race exactly.
    """
    if seconds is None or getattr(clock, "auto_advance", False):
        return await wait()
    found: list[T] = []
    failure: BaseException | None = None
    try:
        async with anyio.create_task_group() as group:

            async def alarm() -> None:
                await clock.sleep(max(seconds, 0.0))
                group.cancel_scope.cancel()

            group.start_soon(alarm)
            found.append(await wait())
            group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:
        failure = first_error(group_error)
    except BaseException:
        if found and undo is not None:
            with anyio.CancelScope(shield=True):
                await undo(found[0])
        raise
    if failure is not None:
        raise failure  # the wait's own error, not a group
    return found[0] if found else None

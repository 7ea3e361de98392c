"""Where the SDK reads the time and sleeps, so tests can substitute a fake clock."""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ["Clock", "SystemClock"]


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

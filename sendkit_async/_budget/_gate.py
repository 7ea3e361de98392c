"""One caller at a time per process, interactive callers first: the gate in front of a budget."""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.lowlevel

from sendkit_async._clock import Clock

from ._protocol import Lane

__all__ = ["Gate"]

T = TypeVar("T")


class Gate:
    """A lock with two lanes whose holder can nap until a moment or until roused.

    The holder waits for its send slot while holding the gate; every answer
    and every arriving interactive caller rouses it, so it can look again (and
    a bulk holder can step aside for the interactive caller). Ownership passes
    straight from one holder to the next, so nobody barges in between.
    """

    __slots__ = ("_clock", "_held", "_queues", "_wake")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._queues: dict[Lane, collections.deque[anyio.Event]] = {
            lane: collections.deque() for lane in Lane
        }
        self._held = False
        self._wake: anyio.Event | None = None

    @property
    def waiting(self) -> int:
        """Callers holding or queued at the gate."""
        return sum(len(queue) for queue in self._queues.values()) + self._held

    def urgent(self) -> bool:
        """Whether an interactive caller is queued."""
        return bool(self._queues[Lane.INTERACTIVE])

    async def turn(self, lane: Lane, attempt: Callable[[], Awaitable[T | None]]) -> T:
        """Run ``attempt`` holding the gate until it returns something.

        ``None`` from it means it stepped aside for an interactive caller: it
        queues again, first in its lane, and tries once more when its turn comes.
        """
        ahead = False
        while True:
            await self.enter(lane, ahead=ahead)
            try:
                result = await attempt()
            finally:
                self.leave()
            if result is not None:
                return result
            ahead = True

    async def enter(self, lane: Lane, *, ahead: bool = False) -> None:
        """Wait for the gate; ``ahead`` puts the caller first in its lane (it stepped aside)."""
        if not self._held and not any(self._queues.values()):
            self._held = True
            try:
                await anyio.lowlevel.checkpoint()  # still a cancellation point
            except BaseException:
                self.leave()  # cancelled holding it: hand it on, or nobody ever gets it again
                raise
            return
        turn = anyio.Event()
        queue = self._queues[lane]
        if ahead:
            queue.appendleft(turn)
        else:
            queue.append(turn)
        if lane is Lane.INTERACTIVE:
            self.rouse()  # a bulk caller holding the gate steps aside
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():
                self.leave()  # the gate was handed to us as we were cancelled: pass it on
            else:
                queue.remove(turn)
            raise

    def leave(self) -> None:
        """Hand the gate to the next caller, interactive ones first."""
        for lane in Lane:
            queue = self._queues[lane]
            if queue:
                queue.popleft().set()
                return
        self._held = False

    def rouse(self) -> None:
        """Wake the holder's nap (an answer arrived, or an urgent caller)."""
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    async def nap(self, delay: float | None) -> None:
        """Sleep ``delay`` seconds (until roused when ``None``), or less if roused."""
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

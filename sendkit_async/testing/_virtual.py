"""Virtual time at the event loop: an asyncio loop whose clock jumps to the next timer when idle.

Every wait in asyncio ends in the loop's selector, with the time to the
earliest timer as its timeout. :class:`VirtualTimeLoop` keeps its own
``time()`` and, when nothing is ready to run and no socket has anything to
read, moves that time to the timer instead of blocking: ``asyncio.sleep``,
``anyio.sleep``, ``asyncio.timeout``, ``anyio.fail_after``, aiohttp's
timeouts and the SDK's own waits (through :attr:`VirtualTimeLoop.clock`) all
run at once, with no guess about when the tasks have settled: the loop
itself knows that nothing can run. Work in process runs in the same order
every time; over real sockets, answers that land in one virtual instant may
be read in another order on a busy machine (the kernel's, not the loop's). It is what trio's
``MockClock(autojump_threshold=0)`` does, for asyncio.

In-process sockets (a :class:`~sendkit_async.testing.FakeSendKit` on
127.0.0.1) keep working: the loop looks at them before each jump, and waits
for real while bytes one of them sent are not yet taken by its peer (on
Linux, where a socket tells: a busy machine delivers loopback traffic late).
Time also stands still while a function runs in ``loop.run_in_executor``. Other work
out of the loop (a real Redis, a thread started by ``anyio.to_thread``) takes
real time the loop cannot see coming; wrap it in
:meth:`VirtualTimeLoop.working` so time stands still until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, TypeVar

import anyio
from typing_extensions import TypeVarTuple, Unpack

__all__ = ["LoopClock", "VirtualTimeLoop", "run_in_virtual_time", "virtual_clock"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_REAL_POLL = 0.05  # while work is out of process: how long one real wait for it lasts, at most
_IN_FLIGHT_POLL = 0.001  # while bytes are on their way between two sockets: the same
_IN_FLIGHT_PATIENCE = 0.5  # real seconds bytes may stay in flight before time moves on regardless


def _unsent_bytes() -> Callable[[int], int] | None:
    """How to ask a socket for its sent, unacknowledged bytes (SIOCOUTQ), where the system tells."""
    try:
        import fcntl  # noqa: PLC0415 - Unix only
        import termios  # noqa: PLC0415 - Unix only
    except ImportError:  # pragma: no cover - Windows
        return None
    request = getattr(termios, "TIOCOUTQ", None)
    if request is None:  # pragma: no cover - not Linux
        return None

    def unsent(fd: int) -> int:
        buffer = bytearray(4)
        fcntl.ioctl(fd, request, buffer)
        return int.from_bytes(buffer, sys.byteorder)

    return unsent


_UNSENT = _unsent_bytes()


class _JumpingSelector(selectors.DefaultSelector):
    """The platform's selector, except that a wait nothing can end moves the loop's time instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop
        self._stalled_since: float | None = None  # real time since when bytes in flight held time

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        if timeout is None or timeout <= 0:
            # Nothing scheduled (only a socket or another thread can wake the loop), or no wait at all.
            return super().select(timeout)
        if loop.busy:
            return super().select(min(timeout, _REAL_POLL))
        ready = super().select(0)
        if ready:
            self._stalled_since = None
            return ready
        if self._in_flight():
            # Bytes one socket wrote that its peer's kernel has not taken yet (a busy machine
            # delivers loopback traffic late) will wake the loop: wait for them, for real, unless
            # they have been stuck that long (a peer that reads nothing: its timeout is due).
            real = time.monotonic()
            if self._stalled_since is None:
                self._stalled_since = real
            if real - self._stalled_since < _IN_FLIGHT_PATIENCE:
                return super().select(min(timeout, _IN_FLIGHT_POLL))
        self._stalled_since = None
        loop.jump(timeout)
        return ready

    def _in_flight(self) -> bool:
        """Whether a registered socket has sent bytes that are not yet acknowledged."""
        if _UNSENT is None:
            return False
        for key in list(self.get_map().values()):
            try:
                if _UNSENT(key.fd):
                    return True
            except OSError:
                continue  # not a socket (the loop's own wake-up pipe)
        return False


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on virtual time.

    Args:
        start: the loop's time at first (seconds).
        wall: the epoch time that ``start`` stands for (what :attr:`clock` reports as wall time).

    Example:
        >>> async def main() -> float:
        ...     await asyncio.sleep(3600)
        ...     return asyncio.get_running_loop().time()
        >>> run_in_virtual_time(lambda clock: main())
        3600.0
    """

    def __init__(self, *, start: float = 0.0, wall: float = 1_700_000_000.0) -> None:
        self._now = start
        self._busy = 0
        self.clock = LoopClock(self, wall=wall - start)
        """The SDK's :class:`~sendkit_async.budget.Clock` on this loop's time."""
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        """The loop's virtual time in seconds."""
        return self._now

    def jump(self, seconds: float) -> None:
        """Move the loop's time forward (the selector does, whenever nothing can run)."""
        self._now += seconds

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[Ts]], T], *args: Unpack[Ts]
    ) -> asyncio.Future[T]:
        """Run ``func`` in a thread, as asyncio does; time stands still until it returns."""
        future = super().run_in_executor(executor, func, *args)
        self._busy += 1
        future.add_done_callback(self._done_working)
        return future

    async def shutdown_default_executor(self, *args: Any, **kwargs: Any) -> None:
        """Join the executor's threads, as asyncio does; its own timeout waits in real time."""
        with self.working():
            await super().shutdown_default_executor(*args, **kwargs)

    def _done_working(self, _: object) -> None:
        self._busy -= 1

    @property
    def busy(self) -> bool:
        """Whether work out of process is out (:meth:`working`): time stands still until it answers."""
        return self._busy > 0

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Hold the loop's time still while real work is out (a call to a real Redis, say)."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1


class LoopClock:
    """The SDK's clock on an event loop's own time: give it to the client, the fake and the budget.

    On a :class:`VirtualTimeLoop` every sleep is virtual; the wall clock moves
    with the loop's time from the epoch moment the loop was given.
    """

    __slots__ = ("_loop", "_offset")

    def __init__(self, loop: asyncio.AbstractEventLoop, *, wall: float) -> None:
        self._loop = loop
        self._offset = wall

    def monotonic(self) -> float:
        """The loop's time."""
        return self._loop.time()

    def wall(self) -> float:
        """Epoch seconds, moving with the loop's time."""
        return self._loop.time() + self._offset

    async def sleep(self, seconds: float) -> None:
        """Sleep on the loop (virtual on a :class:`VirtualTimeLoop`)."""
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return f"LoopClock(now={self._loop.time()!r})"


def virtual_clock() -> LoopClock:
    """The clock of the :class:`VirtualTimeLoop` this runs on.

    For tests that pytest-asyncio runs on one (its ``pytest_asyncio_loop_factories``
    hook, with ``pytest.mark.asyncio(loop_factories=[...])`` to pick it)::

        def pytest_asyncio_loop_factories(config, item):
            return {"asyncio": asyncio.new_event_loop, "virtual_time": VirtualTimeLoop}

    Raises:
        RuntimeError: no loop runs, or it is not a :class:`VirtualTimeLoop`.
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        raise RuntimeError(  # noqa: TRY004 - a wrong loop is a state of the program, as none is
            f"virtual_clock() needs a VirtualTimeLoop; this runs on {type(loop).__name__}"
        )
    return loop.clock


def run_in_virtual_time(main: Callable[[LoopClock], Awaitable[T]], **loop_options: Any) -> T:
    """Run ``main(clock)`` to completion on a fresh :class:`VirtualTimeLoop`, as ``asyncio.run`` would.

    ``clock`` is the loop's :class:`LoopClock`, for the client, the fake
    server and any budget. The loop is closed afterwards: its async
    generators finalized and every task left over cancelled.
    """
    loop = VirtualTimeLoop(**loop_options)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(_main(main, loop.clock))
    finally:
        try:
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def _main(main: Callable[[LoopClock], Awaitable[T]], clock: LoopClock) -> T:
    return await main(clock)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

"""What every ``with_options`` copy of one client shares besides its budget: its wire, loop and tasks.

A :class:`ClientScope` is opened in one event loop (by ``async with`` or the
first call), and refuses to be used from another (:class:`ClientLoopError`)
or after it closed (:class:`ClientClosedError`), as httpx's client knows
whether it is unopened, open or closed.

Streams (``client.dnc.list()``, ``pages()``, ``iter_import()``) run their
concurrent work in tasks this scope owns (:meth:`spawn`), never in the
caller's task: so a caller may leave a stream at any point and in any way
(PEP 789: no cancel scope is held open across a ``yield``), and closing the
client cancels whatever still runs. It also holds the client's adaptive
in-flight limit, one per client as the server that saturates is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from ._clock import Clock
from ._errors import ClientClosedError, ClientLoopError
from ._flow import AdaptiveLimit, Concurrency, FixedLimit, InFlight
from ._throttle import Throttles
from ._transport import AsyncTransport

__all__ = ["Background", "ClientScope"]


class Background:
    """A task a :class:`ClientScope` runs, cancelled through an anyio cancel scope.

    anyio re-delivers a scope's cancellation until the task leaves the scope,
    so code below that swallows one ``CancelledError`` (a client library
    cleaning up a connection) cannot keep the task running; a bare
    ``task.cancel()`` is delivered once.
    """

    __slots__ = ("_cancel_called", "_scope", "task")

    def __init__(self) -> None:
        self._scope: anyio.CancelScope | None = None
        self._cancel_called = False
        self.task: asyncio.Task[None] | None = None

    @property
    def cancel_called(self) -> bool:
        """Whether :meth:`cancel` took effect (the task was told to stop)."""
        return self._cancel_called

    async def run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._cancel_called:
                scope.cancel()
            await coroutine

    def cancel(self) -> None:
        """Stop the task, from any thread, without waiting (a closed loop's task died with it)."""
        task = self.task
        if task is None or task.done():
            return
        with contextlib.suppress(RuntimeError):  # its loop is closed
            task.get_loop().call_soon_threadsafe(self._cancel_now)

    def _cancel_now(self) -> None:
        self._cancel_called = True
        if self._scope is not None:
            self._scope.cancel()


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class ClientScope:
    """The wire, the event loop, the background tasks and the adaptive limit of one client and its copies.

    Args:
        wire: what sends each attempt; closing the scope closes it.
        clock: the clock the adaptive in-flight limit measures latency on.
        allowed_rate: requests per second the rate budget allows now, and
            how many it lets go at once (``None``: unknown), for the adaptive limit.
        max_concurrency: the most the adaptive limit ever allows.
    """

    __slots__ = (
        "_adaptive",
        "_allowed_rate",
        "_background",
        "_clock",
        "_loop",
        "_max",
        "_state",
        "throttles",
        "wire",
    )

    def __init__(
        self,
        wire: AsyncTransport,
        *,
        clock: Clock,
        allowed_rate: Callable[[], tuple[float, int] | None],
        max_concurrency: int,
    ) -> None:
        self.wire = wire
        self.throttles = Throttles()
        self._clock = clock
        self._allowed_rate = allowed_rate
        self._max = max_concurrency
        self._adaptive: AdaptiveLimit | None = None
        self._state = _State.UNOPENED
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[Background] = set()

    def __repr__(self) -> str:
        return f"ClientScope({self._state.value}, {len(self._background)} tasks)"

    @property
    def opened(self) -> bool:
        """Whether it was opened in an event loop (and not closed yet)."""
        return self._state is _State.OPEN

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has run."""
        return self._state is _State.CLOSED

    def enter(self) -> None:
        """Check the scope may be used from here (opening it in this loop the first time).

        Raises:
            ClientClosedError: it was closed.
            ClientLoopError: it was opened in another event loop.
        """
        if self._state is _State.CLOSED:
            raise ClientClosedError("this SendKit client is closed; create a new one")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._state = _State.OPEN
            opener = getattr(self.wire, "open", None)  # a transport that binds to the loop says so
            if callable(opener):
                opener()
        elif self._loop is not loop:
            where = "a loop that has since closed" if self._loop.is_closed() else "another event loop"
            raise ClientLoopError(
                f"this SendKit client was opened in {where}: a client's connections, rate budget and "
                "tasks belong to one event loop (one made at module level and used from several "
                "asyncio.run() calls or pytest-asyncio's per-test loops meets this); make one client per "
                "event loop, for example in a fixture or in your web app's lifespan"
            )

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> Background:
        """Run ``coroutine`` in a task this scope owns until it ends or the scope closes.

        The coroutine must catch its own errors (a stream's producer hands
        them to its reader), so no task ever ends with an exception nobody reads.

        Raises:
            ClientClosedError: the scope is closed.
            ClientLoopError: it was opened in another event loop.
        """
        try:
            self.enter()
        except BaseException:
            coroutine.close()
            raise
        assert self._loop is not None  # noqa: S101 - enter() bound it
        background = Background()
        background.task = self._loop.create_task(background.run(coroutine))
        self._background.add(background)
        background.task.add_done_callback(lambda _task: self._background.discard(background))
        return background

    def in_flight(self, concurrency: Concurrency) -> InFlight:
        """The in-flight limit a helper runs under: its own fixed cap, or the client's adaptive one."""
        if concurrency != "auto":
            return FixedLimit(concurrency)
        if self._adaptive is None:
            self._adaptive = AdaptiveLimit(clock=self._clock, rate=self._allowed_rate, max_limit=self._max)
        return self._adaptive

    @property
    def in_flight_limit(self) -> int | None:
        """The adaptive limit now, ``None`` before any helper used it."""
        return None if self._adaptive is None else self._adaptive.limit

    async def aclose(self) -> None:
        """Cancel the tasks still running, wait for them, and close the wire; idempotent.

        Raises:
            ClientLoopError: it was opened in another event loop that still runs.
        """
        if self._state is _State.CLOSED:
            return
        loop = self._loop
        if loop is not None and loop is not asyncio.get_running_loop():
            if not loop.is_closed():
                raise ClientLoopError("close this SendKit client in the event loop it was opened in")
            # Its loop is gone, and its tasks and connections with it: nothing left to wait for.
            self._state = _State.CLOSED
            with contextlib.suppress(RuntimeError):
                await self.wire.aclose()
            return
        self._state = _State.CLOSED
        running = list(self._background)
        for background in running:
            background.cancel()
        tasks = [background.task for background in running if background.task is not None]
        if tasks:
            await asyncio.wait(tasks)
        await self.wire.aclose()

"""The one fan-out: run calls at once under an in-flight limit, a slot each, results in order or as they end.

Everything the SDK runs concurrently goes through :func:`fan_out`: the import
engine's batches, the chunks of a large inbox selection, ``update_many``'s
updates, a page-mode walk's pages and a cursor walk's segments.

* **Slot first.** Each worker takes a slot of the limit *before* it takes
  the next item, so the items in memory are about the calls in flight.
* **Results** go to ``deliver`` as each call ends, or (``ordered``) in the
  items' order, with at most ``window`` items taken ahead of the next one
  due (the rest of the workers wait).
* **Errors.** The first exception (from a call, the item source or a
  delivery) cancels the other calls, and is raised itself, not wrapped in
  an exception group.
* **Leaving.** It is a coroutine, never an async generator: its task group
  opens and closes in the caller's task, so nothing is held open across a
  ``yield`` (PEP 789). Cancelling the caller cancels every call, at once.
"""

from __future__ import annotations

import itertools
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sized,
)
from typing import Any, Generic, TypeVar

import anyio

from ._flow import InFlight
from ._groups import BaseExceptionGroup, first_error

__all__ = ["beside", "fan_out", "in_child_task"]

X = TypeVar("X")
R = TypeVar("R")


class _Items(Generic[X]):
    """The items, handed out one at a time, numbered, to whichever worker asks next."""

    def __init__(self, items: Iterable[X] | AsyncIterable[X]) -> None:
        self._sync: Iterator[X] | None = None
        self._async: AsyncIterator[X] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
        else:
            self._sync = iter(items)
        self._lock = anyio.Lock()
        self._count = itertools.count()
        self.exhausted = False

    async def take(self) -> tuple[int, X] | None:
        """The next item and its number, or ``None`` once there are no more."""
        if self._sync is not None:
            return self._next_sync(self._sync)
        async with self._lock:  # an async iterator is advanced by one worker at a time
            return await self._next_async()

    def _next_sync(self, items: Iterator[X]) -> tuple[int, X] | None:
        if self.exhausted:
            return None
        try:
            item = next(items)
        except StopIteration:
            self.exhausted = True
            return None
        return next(self._count), item

    async def _next_async(self) -> tuple[int, X] | None:
        if self.exhausted or self._async is None:
            return None
        try:
            item = await anext(self._async)
        except StopAsyncIteration:
            self.exhausted = True
            return None
        return next(self._count), item

    async def aclose(self) -> None:
        """Finish an async generator's iteration here, in this task (not in the loop's finaliser)."""
        closing = getattr(self._async, "aclose", None)
        if closing is not None:
            with anyio.CancelScope(shield=True):
                await closing()


class _InOrder(Generic[R]):
    """Results held until every earlier one is delivered; at most ``window`` items taken ahead."""

    def __init__(self, deliver: Callable[[R], Awaitable[None]] | None, window: int | None) -> None:
        self._deliver = deliver
        self._window = window
        self._ready: dict[int, R] = {}
        self._next = 0
        self._delivering = False
        self._moved = anyio.Event()

    async def room_for(self, index: int) -> None:
        """Wait until ``index`` is within the window of the next result due."""
        while self._window is not None and index >= self._next + self._window:
            await self._moved.wait()

    async def put(self, index: int, result: R) -> None:
        self._ready[index] = result
        if self._delivering:
            return  # the worker delivering now also delivers this one, in its turn
        self._delivering = True
        try:
            while self._next in self._ready:
                value = self._ready.pop(self._next)
                self._next += 1
                self._moved.set()
                self._moved = anyio.Event()
                if self._deliver is not None:
                    await self._deliver(value)
        finally:
            self._delivering = False


async def _work(
    source: _Items[X],
    call: Callable[[X], Awaitable[R]],
    limiter: InFlight,
    in_order: _InOrder[R] | None,
    deliver: Callable[[R], Awaitable[None]] | None,
) -> None:
    """One worker: a slot, then an item, then its call; the result delivered outside the slot."""
    while True:
        async with limiter.slot():
            taken = await source.take()
            if taken is None:
                return
            index, item = taken
            if in_order is not None:
                await in_order.room_for(index)
            result = await call(item)
        if in_order is not None:
            await in_order.put(index, result)
        elif deliver is not None:
            await deliver(result)


async def fan_out(
    items: Iterable[X] | AsyncIterable[X],
    call: Callable[[X], Awaitable[R]],
    *,
    limiter: InFlight,
    deliver: Callable[[R], Awaitable[None]] | None = None,
    ordered: bool = False,
    window: int | None = None,
) -> None:
    """Run ``call(item)`` for every item, as many at once as ``limiter`` allows; see the module docstring.

    Args:
        items: the work; read lazily, one item per free slot (an async
            iterable is advanced by one worker at a time).
        call: what to run per item, holding its slot (retries included).
        limiter: the in-flight limit (fixed, or the client's adaptive one).
        deliver: awaited with each result, outside the call's slot.
        ordered: deliver in the items' order instead of as calls end.
        window: with ``ordered``, the most items taken ahead of the next
            result due (``None``: no bound beyond the limiter's).

    Raises:
        Exception: the first error of a call, the items or a delivery; the rest were cancelled.
    """
    source = _Items(items)
    in_order: _InOrder[R] | None = _InOrder(deliver, window) if ordered else None
    workers = max(1, limiter.max_limit)
    if isinstance(items, Sized):
        workers = max(1, min(workers, len(items)))
    failure: BaseException | None = None
    try:
        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(_work, source, call, limiter, in_order, deliver)
    except BaseExceptionGroup as group_error:
        failure = first_error(group_error)
    finally:
        await source.aclose()
    if failure is not None:
        raise failure


async def beside(
    main: Callable[[], Awaitable[None]], helper: Callable[[], Coroutine[Any, Any, None]] | None
) -> None:
    """Run ``main()`` with ``helper()`` in a task beside it, cancelled once ``main`` ends.

    The first error of either cancels the other and is raised, unwrapped (a
    cursor walk's scheduler beside its output; a job's lease keeper beside its batches).
    """
    failure: BaseException | None = None
    try:
        async with anyio.create_task_group() as group:
            if helper is not None:
                group.start_soon(helper)
            await main()
            group.cancel_scope.cancel()
    except BaseExceptionGroup as group_error:
        failure = first_error(group_error)
    if failure is not None:
        raise failure


async def in_child_task(function: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Await ``function()`` in a child task of a task group opened here; its error is raised as it is.

    A native cancellation of the caller (``task.cancel()``) then reaches the
    child as anyio's own, re-delivered until the child is out: one
    ``CancelledError`` swallowed deep below (by a client library cleaning up
    a connection) cannot keep it running.
    """
    failure: BaseException | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(function)
    except BaseExceptionGroup as group_error:
        failure = first_error(group_error)
    if failure is not None:
        raise failure

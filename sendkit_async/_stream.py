"""Streams that are safe to leave: an async iterator that only reads what a task of the client sends.

``client.dnc.list()``, ``client.dnc.pages()`` and ``client.dnc.iter_import()``
return a :class:`Stream`. Its producer (the concurrent walk, the import job)
runs in a task the client owns (:meth:`ClientScope.spawn`), started on the
first ``__anext__``; the stream itself holds nothing but the reading end of
a bounded channel. So leaving it in any way is safe, with no
``contextlib.aclosing`` needed:

* ``break``, an exception in the loop body, or dropping the stream: when
  it is garbage-collected its producer is cancelled, from whatever task;
* the consuming task cancelled, or a timeout around the loop: the wait on
  the channel is cancelled like any ``await``, and nothing of the
  stream's is in that task to be harmed;
* ``aclose()`` or ``async with stream:``: the producer is cancelled and
  waited for, so its requests in flight are over when it returns;
* the client closed: the producer is cancelled, and a stream still read
  raises :class:`ClientClosedError`.

The producer's own error (a typed :class:`SendKitError`) comes out of the
stream after the items produced before it, as it would from a generator.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from typing_extensions import Self

from ._errors import ClientClosedError
from ._scope import Background, ClientScope

__all__ = ["Emit", "Flattened", "Produce", "Stream"]

T = TypeVar("T")
Emit = Callable[[T], Awaitable[None]]
"""Hands one item to the stream's reader, waiting while its buffer is full."""
Produce = Callable[[Emit[T]], Awaitable[None]]
"""A producer: emits every item, then returns (or raises the error the reader should see)."""


class _Outcome:
    """How the producer ended, for the reader (it holds nothing of the stream's, so cannot keep it alive)."""

    __slots__ = ("completed", "error")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.completed = False


async def _produce(produce: Produce[T], send: MemoryObjectSendStream[T], outcome: _Outcome) -> None:
    """The producer's task: run it, keep its error for the reader, and always close the channel."""
    try:
        await produce(send.send)
        outcome.completed = True
    except anyio.BrokenResourceError:
        pass  # the reader is gone: nothing to tell
    except Exception as exc:  # noqa: BLE001 - handed to the reader, who raises it
        outcome.error = exc
    finally:
        send.close()


class Stream(Generic[T]):
    """An async iterator over what the client's background task produces; see the module docstring.

    Example:
        >>> async for entry in client.dnc.list():  # doctest: +SKIP
        ...     if entry.email == wanted:
        ...         break  # safe: the walk's requests are cancelled

    Args:
        scope: the client's scope, which runs and owns the producer's task.
        produce: the producer (called once, in that task, with the channel's send).
        buffer: items the producer may hold ready ahead of the reader (0: hand over one at a time).
    """

    __slots__ = ("__weakref__", "_buffer", "_outcome", "_produce", "_receive", "_scope", "_task")

    def __init__(self, scope: ClientScope, produce: Produce[T], *, buffer: int = 0) -> None:
        self._scope = scope
        self._produce: Produce[T] | None = produce
        self._buffer = buffer
        self._outcome = _Outcome()
        self._receive: MemoryObjectReceiveStream[T] | None = None
        self._task: Background | None = None

    def __repr__(self) -> str:
        state = "unstarted" if self._produce is not None else "closed" if self._receive is None else "running"
        return f"<{type(self).__name__} {state}>"

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        receive = self._receive
        if receive is None:
            if self._produce is None:
                raise StopAsyncIteration  # closed, or read to its end
            receive = self._start(self._produce)
        try:
            return await receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        self._release()
        outcome = self._outcome
        if outcome.error is not None:
            error, outcome.error = outcome.error, None
            raise error
        if not outcome.completed and self._scope.closed:
            raise ClientClosedError(
                "the SendKit client was closed while this stream was being read"
            ) from None
        raise StopAsyncIteration

    def _start(self, produce: Produce[T]) -> MemoryObjectReceiveStream[T]:
        self._produce = None
        send, receive = anyio.create_memory_object_stream[T](self._buffer if self._buffer >= 0 else math.inf)
        try:
            self._task = self._scope.spawn(_produce(produce, send, self._outcome))
        except BaseException:
            send.close()
            receive.close()
            raise
        self._receive = receive
        return receive

    def _release(self) -> None:
        """Let go of the channel and stop the producer (now, from any thread; never waits)."""
        self._produce = None
        receive, self._receive = self._receive, None
        if receive is not None:
            receive.close()
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        """Stop the stream: its producer is cancelled and waited for (its requests are over); idempotent."""
        self._release()
        background, self._task = self._task, None
        task = None if background is None else background.task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([task])  # a cancellation of our caller still comes through

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Dropped without aclose (a `break` out of `async for`): stop the producer, quietly.
        self._release()


S = TypeVar("S")


class Flattened(Generic[S, T]):
    """The items of a stream of groups (the entries of a stream of pages), read without a channel hop each.

    Leaving it is leaving the stream under it: dropped, it drops that stream
    (whose producer is then cancelled); :meth:`aclose` and ``async with``
    close it.
    """

    __slots__ = ("_groups", "_items", "_unpack")

    def __init__(self, groups: Stream[S], unpack: Callable[[S], Iterable[T]]) -> None:
        self._groups = groups
        self._unpack = unpack
        self._items: Iterator[T] = iter(())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._groups!r}>"

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        while True:
            for item in self._items:
                return item
            self._items = iter(self._unpack(await self._groups.__anext__()))

    async def aclose(self) -> None:
        """Stop the stream under it (see :meth:`Stream.aclose`); idempotent."""
        self._items = iter(())
        await self._groups.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

"""A raw-socket HTTP server that answers badly on purpose: bombs, floods, trickles, bytes that are not HTTP.

It reads each request (head and ``Content-Length`` body), then plays one of
:data:`ANSWERS` on that connection. It is written against the socket, not an
HTTP library, so it can send what no library would.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]
GIB = 1024**3


@functools.cache
def bomb(kind: str, size: int = GIB) -> bytes:
    """``size`` zero bytes compressed as ``gzip`` or zlib-wrapped ``deflate`` (about 1 MB for 1 GiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS if kind == "gzip" else zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    parts.append(packer.flush())
    return b"".join(parts)


def _head(status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _bomb(kind: str, writer: asyncio.StreamWriter) -> None:
    body = bomb(kind)
    writer.write(
        _head(Content_Type="application/json", Content_Encoding=kind, Content_Length=str(len(body))) + body
    )
    await writer.drain()


async def _huge_body(writer: asyncio.StreamWriter) -> None:
    writer.write(_head(Content_Type="application/json", Content_Length=str(200 * 1024**2)))
    block = b" " * (1024 * 1024)
    for _ in range(200):
        writer.write(block)
        await writer.drain()


async def _huge_body_undeclared(writer: asyncio.StreamWriter) -> None:
    writer.write(_head(Content_Type="application/json", Connection="close"))
    block = b" " * (1024 * 1024)
    for _ in range(200):
        writer.write(block)
        await writer.drain()


async def _chunked_forever(writer: asyncio.StreamWriter) -> None:
    writer.write(_head(Content_Type="application/json", Transfer_Encoding="chunked"))
    while True:
        writer.write(b"400\r\n" + b" " * 1024 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)


async def _raw(data: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(data)
    await writer.drain()


async def _trickle(writer: asyncio.StreamWriter) -> None:
    writer.write(_head(Content_Type="application/json", Content_Length="100"))
    for _ in range(100):
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(1.0)


ANSWERS: dict[str, Answer] = {
    "a gzip bomb (1 MB inflating to 1 GiB)": functools.partial(_bomb, "gzip"),
    "a deflate bomb": functools.partial(_bomb, "deflate"),
    "a declared 200 MB body": _huge_body,
    "an undeclared 200 MB body": _huge_body_undeclared,
    "chunked without end": _chunked_forever,
    "a bad status line": functools.partial(_raw, b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}"),
    "10,000 header fields": functools.partial(
        _raw, _head(**{f"X_Field_{i}": "v" for i in range(10_000)}, Content_Length="2") + b"{}"
    ),
    "one 100 KB header": functools.partial(_raw, _head(X_Big="a" * 100_000, Content_Length="2") + b"{}"),
    "bytes that are not HTTP": functools.partial(_raw, bytes(range(256)) * 8),
    "an encoding never asked for": functools.partial(
        _raw, _head(Content_Encoding="br", Content_Length="4") + b"\x0b\x01\x80\x00"
    ),
    "1 byte a second": _trickle,
}


class HostileServer:
    """Plays ``answer`` on every connection; ``requests`` counts the requests it read."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                await self.answer(writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HostileServer]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1024 * 1024)
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

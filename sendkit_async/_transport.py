"""The wire: one HTTP exchange per call of ``send``, and nothing else.

In the spirit of httpx's ``AsyncBaseTransport.handle_request``: the session
builds a :class:`WireRequest` for every attempt and hands it to the
client's :class:`AsyncTransport`; what comes back is a :class:`WireResponse`
(any status), or :class:`TransportTimeoutError` / :class:`TransportError`
when no answer came. Retries, pacing, redaction and error mapping stay in
the session. :class:`AiohttpTransport` is the real one;
:class:`sendkit_async.testing.MockTransport` answers from a function.

:class:`AiohttpTransport` trusts nothing the server sends: the body is read
up to ``max_answer_bytes`` (a declared length past it is refused before
reading), a ``gzip`` or ``deflate`` body is inflated by the transport itself
to at most the same bound, status lines and header fields are bounded, and
every way an answer can be malformed (a bad status line, too many or too
long headers, a broken chunked body, bytes that are not HTTP) is a
:class:`TransportError`, retried like a dropped connection. The request's
``timeout.total`` covers the whole exchange, headers and body, so a server
that trickles its answer costs at most that.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping
from typing import Final, Protocol, runtime_checkable

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._config import DEFAULT_CONNECTION_LIMIT, DEFAULT_MAX_ANSWER_BYTES, MAX_ANSWER_LINE, Timeout
from ._errors import AnswerTooLargeError, ClientClosedError, TransportError, TransportTimeoutError

__all__ = ["AiohttpTransport", "AsyncTransport", "WireRequest", "WireResponse"]


def _headers(value: Mapping[str, str]) -> CIMultiDictProxy[str]:
    if isinstance(value, CIMultiDictProxy):
        return value
    return CIMultiDictProxy(CIMultiDict(value))


@attrs.frozen
class WireRequest:
    """One attempt as sent: the URL holds the query, the headers hold the key (kept out of the repr)."""

    method: str
    url: URL
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes | None = attrs.field(default=None, repr=False)
    timeout: Timeout = attrs.Factory(Timeout)


@attrs.frozen
class WireResponse:
    """An answer, whatever its status: headers looked up case-insensitively, the body as bytes."""

    status: int
    headers: CIMultiDictProxy[str] = attrs.field(factory=dict, converter=_headers)
    body: bytes = b""


@runtime_checkable
class AsyncTransport(Protocol):
    """Sends one request and returns its answer; the session calls :meth:`send` once per attempt.

    A transport that binds to an event loop may also define ``open()``: the
    client calls it once, in the loop where it is first used, before any
    ``send`` (:class:`AiohttpTransport` opens its connection pool there).

    Raises (from :meth:`send`):
        TransportTimeoutError: no answer within ``request.timeout``.
        TransportError: no answer (the connection failed or broke).
    """

    async def send(self, request: WireRequest) -> WireResponse:
        """One exchange; any status is an answer, not an error."""
        ...

    async def aclose(self) -> None:
        """Release the connections; idempotent."""
        ...


_CHUNK: Final = 64 * 1024
# What the transport can inflate under its bound; it asks for nothing else.
_ENCODINGS: Final = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ACCEPT_ENCODING: Final = "gzip, deflate"


class AiohttpTransport:
    """The real wire: an ``aiohttp.ClientSession`` (its own, opened on first use, or one borrowed).

    Redirects are never followed (one would carry the key wherever it
    points). A borrowed session is left open by :meth:`aclose`. Answers are
    bounded (see the module docstring): ``max_answer_bytes`` is the most a
    body may hold, as sent and inflated.
    """

    __slots__ = ("_borrowed", "_closed", "_connection_limit", "_max_answer", "_session")

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self._session = session
        self._borrowed = session is not None
        self._connection_limit = connection_limit
        self._max_answer = max_answer_bytes
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"AiohttpTransport(borrowed={self._borrowed}, connection_limit={self._connection_limit}, "
            f"max_answer_bytes={self._max_answer})"
        )

    def open(self) -> aiohttp.ClientSession:
        """The pool, opened on first use (inside the running event loop)."""
        if self._closed:
            raise ClientClosedError("this SendKit client is closed; create a new one")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit), raise_for_status=False
            )
        return self._session

    async def send(self, request: WireRequest) -> WireResponse:
        timeout = aiohttp.ClientTimeout(total=request.timeout.total, connect=request.timeout.connect)
        headers = request.headers
        if "Accept-Encoding" not in headers:
            headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        try:
            async with self.open().request(
                request.method,
                request.url,
                data=request.body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                auto_decompress=False,
                max_line_size=MAX_ANSWER_LINE,
                max_field_size=MAX_ANSWER_LINE,
            ) as response:
                try:
                    body = await self._read(response)
                except AnswerTooLargeError:
                    response.close()  # drop the connection: the rest is never read
                    raise
                return WireResponse(response.status, response.headers, body)
        except asyncio.TimeoutError as exc:
            raise TransportTimeoutError("no answer in time") from exc
        except aiohttp.ClientConnectorError as exc:  # refused, no such host, a failed TLS handshake
            raise TransportError(_described(exc), connected=False) from exc
        except aiohttp.ClientError as exc:  # dropped, or malformed: a bad status line, headers, body
            raise TransportError(_described(exc)) from exc

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, read and inflated within ``max_answer_bytes``."""
        limit = self._max_answer
        declared = response.content_length
        if declared is not None and declared > limit:
            raise AnswerTooLargeError(
                f"the answer declares {declared:,} bytes, past the {limit:,} read at most"
            )
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity") and encoding not in _ENCODINGS:
            raise TransportError(f"the answer is encoded as {encoding!r}, which was not asked for")
        parts: list[bytes] = []
        size = 0
        async for part in response.content.iter_chunked(_CHUNK):
            size += len(part)
            if size > limit:
                raise AnswerTooLargeError(f"the answer is longer than the {limit:,} bytes read at most")
            parts.append(part)
        body = b"".join(parts)
        return body if encoding in ("", "identity") else _inflate(body, encoding, limit)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._session is not None and not self._borrowed:
            await self._session.close()


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """A ``gzip`` or ``deflate`` body inflated to at most ``limit`` bytes (a bomb stops there).

    Raises:
        AnswerTooLargeError: it inflates past ``limit``.
        TransportError: it is not what its encoding says.
    """
    wbits = _ENCODINGS[encoding]
    if encoding == "deflate" and body[:1] and body[0] & 0x0F != 8:  # noqa: PLR2004 - zlib's method nibble
        wbits = -zlib.MAX_WBITS  # a raw deflate stream, as some servers send for "deflate"
    inflater = zlib.decompressobj(wbits)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise TransportError(f"the answer is not valid {encoding}: {exc}") from exc
    if len(plain) > limit or inflater.unconsumed_tail:
        raise AnswerTooLargeError(f"the answer inflates past the {limit:,} bytes read at most")
    return plain


def _described(exc: aiohttp.ClientError) -> str:
    """One line for an aiohttp failure (a malformed answer's message can be long, or quote raw bytes)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__

"""The wire: one HTTP exchange per call of ``send``, and nothing else.

In the spirit of httpx's ``AsyncBaseTransport.handle_request``: the session
builds a :class:`WireRequest` for every attempt and hands it to the
client's :class:`AsyncTransport`; what comes back is a :class:`WireResponse`
(any status), or :class:`TransportTimeoutError` / :class:`TransportError`
when no answer came. Retries, pacing, redaction and error mapping stay in
the session. :class:`AiohttpTransport` is the real one;
:class:`sendkit_async.testing.MockTransport` answers from a function.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._config import DEFAULT_CONNECTION_LIMIT, Timeout
from ._errors import ClientClosedError, TransportError, TransportTimeoutError

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


class AiohttpTransport:
    """The real wire: an ``aiohttp.ClientSession`` (its own, opened on first use, or one borrowed).

    Redirects are never followed (one would carry the key wherever it
    points). A borrowed session is left open by :meth:`aclose`.
    """

    __slots__ = ("_borrowed", "_closed", "_connection_limit", "_session")

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    ) -> None:
        self._session = session
        self._borrowed = session is not None
        self._connection_limit = connection_limit
        self._closed = False

    def __repr__(self) -> str:
        return f"AiohttpTransport(borrowed={self._borrowed}, connection_limit={self._connection_limit})"

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
        try:
            async with self.open().request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return WireResponse(response.status, response.headers, body)
        except asyncio.TimeoutError as exc:
            raise TransportTimeoutError("no answer in time") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise TransportError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._session is not None and not self._borrowed:
            await self._session.close()

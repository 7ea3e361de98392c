"""A transport that answers from a function: tests script the wire without patching aiohttp."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from sendkit_async._transport import WireRequest, WireResponse

__all__ = ["MockTransport", "json_response"]

Handler = Callable[[WireRequest], WireResponse | Awaitable[WireResponse]]


def json_response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> WireResponse:
    """An answer with a JSON body (``None``: empty), as a handler returns it."""
    raw = b"" if body is None else orjson.dumps(body)
    return WireResponse(status, {"Content-Type": "application/json", **(headers or {})}, raw)


class MockTransport:
    """An :class:`~sendkit_async.transport.AsyncTransport` whose every attempt is ``handler(request)``.

    In the spirit of httpx's ``MockTransport``. The handler (plain or
    async) returns a :class:`~sendkit_async.transport.WireResponse`, or raises
    :class:`~sendkit_async.TransportError` / ``TransportTimeoutError`` for
    no answer. ``requests`` keeps every request seen, in order::

        def handler(request):
            return json_response(200, {"data": [], "pagination": {...}})


        async with SendKit(api_key="sk_test", transport=MockTransport(handler)) as client:
            ...
    """

    __slots__ = ("_handler", "closed", "requests")

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[WireRequest] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"MockTransport({len(self.requests)} requests)"

    async def send(self, request: WireRequest) -> WireResponse:
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def aclose(self) -> None:
        self.closed = True

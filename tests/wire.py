"""A scripted wire: answers queued per method and URL, served through ``MockTransport`` (no aiohttp).

For tests that script what the server says. The client runs unchanged
(session, budget, retries, bulk engine) on :class:`Wire` as its transport::

    wire = Wire()
    wire.get(f"{API}/v1/dnc?limit=1", status=429, headers={"Retry-After": "2"})
    wire.get(re.compile(r".*/v1/dnc\\?.*"), payload={...}, repeat=True)
    async with SendKit(api_key=KEY, transport=wire) as client:
        ...

Answers are taken in the order they were added, the first whose method and
URL match (a string matches the whole URL, query included; a pattern is
matched from the start); an answer without ``repeat`` is used once. A
request nothing matches fails as a dropped connection would (a ``TransportError``).
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import orjson
from yarl import URL

from sendkit_async import TransportError
from sendkit_async.testing import MockTransport
from sendkit_async.transport import WireRequest, WireResponse


@attrs.define
class _Answer:
    method: str
    url: URL | re.Pattern[str]
    repeat: bool
    response: WireResponse

    def matches(self, request: WireRequest) -> bool:
        if self.method != request.method:
            return False
        if isinstance(self.url, re.Pattern):
            return self.url.match(str(request.url)) is not None
        return self.url == request.url


class Wire(MockTransport):
    """A :class:`MockTransport` answering from a script (``get``, ``post``, ``patch``)."""

    def __init__(self) -> None:
        super().__init__(self._answer)
        self._script: list[_Answer] = []

    def get(self, url: str | re.Pattern[str], **answer: Any) -> None:
        self.add("GET", url, **answer)

    def post(self, url: str | re.Pattern[str], **answer: Any) -> None:
        self.add("POST", url, **answer)

    def patch(self, url: str | re.Pattern[str], **answer: Any) -> None:
        self.add("PATCH", url, **answer)

    def add(
        self,
        method: str,
        url: str | re.Pattern[str],
        *,
        status: int = 200,
        payload: Any = None,
        body: str | bytes = b"",
        headers: dict[str, str] | None = None,
        repeat: bool = False,
    ) -> None:
        """Queue one answer: a status with a JSON ``payload`` or a raw ``body``."""
        raw = orjson.dumps(payload) if payload is not None else body
        raw = raw.encode() if isinstance(raw, str) else raw
        fields = {"Content-Type": "application/json"} if payload is not None else {}
        where = url if isinstance(url, re.Pattern) else URL(url)
        response = WireResponse(status, {**fields, **(headers or {})}, raw)
        self._script.append(_Answer(method, where, repeat, response))

    def sent(self, method: str | None = None) -> list[WireRequest]:
        """Every request seen, in order (only ``method``'s when given)."""
        return [request for request in self.requests if method in (None, request.method)]

    def _answer(self, request: WireRequest) -> WireResponse:
        for index, answer in enumerate(self._script):
            if answer.matches(request):
                if not answer.repeat:
                    del self._script[index]
                return answer.response
        raise TransportError(f"nothing scripted for {request.method} {request.url}")

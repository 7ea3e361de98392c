"""A server in virtual time behind a MockTransport: rate limit, capacity, queue, service time.

The whole client runs unchanged (session, budget, in-flight limit, bulk
engine); only the wire is :class:`VirtualServer`'s (``server.transport()``), whose
service and queueing sleep on a :class:`FakeClock`, so a minute of traffic
takes a fraction of a second.
"""

from __future__ import annotations

from collections import deque

import anyio
import attrs
import orjson

from sendkit_async.testing import FakeClock, MockTransport, json_response
from sendkit_async.testing._limits import Limiter, Spelling, make_limiter
from sendkit_async.transport import WireRequest, WireResponse


@attrs.define(eq=False)
class VirtualServer:
    """Counts a request on arrival (rate limit), then queues it for one of ``capacity`` servers."""

    clock: FakeClock
    service: float = 0.1  # an import's
    per_entry: float = 0.0
    list_service: float | None = None  # a listing's (default: as an import's)
    capacity: int | None = None
    rate: int | None = None
    spelling: Spelling = attrs.Factory(Spelling)
    limiter: Limiter | None = None
    in_flight: int = 0
    serving: int = 0
    queue: deque[anyio.Event] = attrs.Factory(deque)
    arrivals: list[tuple[float, int]] = attrs.Factory(list)  # (time, in flight with this one)
    completions: list[float] = attrs.Factory(list)
    imports: int = 0
    rate_limited: int = 0

    def __attrs_post_init__(self) -> None:
        if self.rate is not None:
            self.limiter = make_limiter("token", self.rate, 1.0, burst=1, start=self.clock.wall())

    def transport(self) -> MockTransport:
        """The wire a client sends through: every attempt is :meth:`answer`'s."""
        return MockTransport(self.answer)

    @property
    def peak(self) -> int:
        return max((n for _, n in self.arrivals), default=0)

    def in_flight_after(self, start: float) -> list[int]:
        return [n for t, n in self.arrivals if t >= start]

    async def answer(self, request: WireRequest) -> WireResponse:
        headers: dict[str, str] = {}
        if self.limiter is not None:
            now = self.clock.wall()
            verdict = self.limiter.hit(now)
            headers = dict(self.spelling.headers(self.limiter.state(now), now))
            if not verdict.allowed:
                self.rate_limited += 1
                headers["Retry-After"] = self.spelling.retry_after_value(verdict.retry_after, now)
                return json_response(429, {"error": "rate limited"}, headers)
        entries = (
            len(orjson.loads(request.body)["entries"]) if request.method == "POST" and request.body else 0
        )
        self.in_flight += 1
        self.arrivals.append((self.clock.monotonic(), self.in_flight))
        try:
            light = self.list_service if not entries and self.list_service is not None else None
            await self._served(light if light is not None else self.service + self.per_entry * entries)
        finally:
            self.in_flight -= 1
        self.completions.append(self.clock.monotonic())
        if entries:
            self.imports += 1
            return json_response(200, {"success": True, "data": {"imported": entries, "skipped": 0}}, headers)
        pagination = {"total": 0, "page": 1, "limit": 1, "pages": 0}
        return json_response(200, {"success": True, "data": [], "pagination": pagination}, headers)

    async def _served(self, seconds: float) -> None:
        if self.capacity is not None and (self.serving >= self.capacity or self.queue):
            turn = anyio.Event()
            self.queue.append(turn)
            await turn.wait()
        else:
            self.serving += 1
        try:
            await self.clock.sleep(seconds)
        finally:
            self.serving -= 1
            if self.queue:
                self.serving += 1
                self.queue.popleft().set()

"""The edge in front of the fake API: its rate limiter, a queue of servers, latency and injected faults.

:class:`FakeSendKit` is the API (its store, routes, auth and rules);
an :class:`Edge` is what a real deployment puts in front of one and what
goes wrong on the way: it counts each request on arrival against the key's
limiter and stamps the answer's rate-limit fields (as a real edge does,
before the application runs), queues requests past the server's capacity,
spends the processing time, and drops connections or answers 5xx at the
rates asked, repeatably with a seed. Its knobs are attributes, so a test may
change them mid-run (``fake.edge.latency = 0``).

Also here: the errors a request can end in (each is an answer in the API's
``{"error", "message", "code"}`` shape) and the counters the server keeps.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Final

import attrs
from aiohttp import web

from sendkit_async._clock import Clock, SystemClock
from sendkit_async._errors import ValidationError

from ._limits import (
    LIMITER_SHAPES,
    REFUSAL_STATUSES,
    HeaderStyle,
    Limiter,
    LimiterShape,
    LimitMeaning,
    ResetStyle,
    RetryAfterStyle,
    Spelling,
    make_limiter,
    states_of,
)

__all__ = ["GENEROUS_LIMIT", "APIError", "Edge", "OverloadedError", "RateLimitedError", "ServerStats"]

# Without a rate_limit, the window every answer's fields describe: never reached in practice.
GENEROUS_LIMIT: Final = 100_000


class APIError(Exception):
    """A request the server refuses: answered with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OverloadedError(APIError):
    """Past the queue limit: 503 with ``Retry-After``."""


class RateLimitedError(APIError):
    """Past the key's limit: the refusal's status, its extra headers and body fields."""

    def __init__(
        self, status: int, message: str, *, headers: dict[str, str], fields: dict[str, object]
    ) -> None:
        super().__init__(status, message)
        self.headers = headers
        self.fields = fields


@attrs.define
class ServerStats:
    """Counters a test or benchmark can read (and :meth:`reset`)."""

    requests: int = 0
    by_route: Counter[str] = attrs.Factory(Counter)
    by_status: Counter[int] = attrs.Factory(Counter)
    rate_limited: int = 0
    injected_errors: int = 0
    dropped: int = 0
    largest_batch: int = 0
    entries_received: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    queued: int = 0
    max_queued: int = 0
    overloaded: int = 0

    def reset(self) -> None:
        """Zero every counter (``in_flight`` and ``queued`` keep counting live requests)."""
        live, queued = self.in_flight, self.queued
        self.__init__()  # type: ignore[misc]
        self.in_flight, self.queued = live, queued


def _seed(_edge: Edge, _attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValidationError(f"seed must be an int or None, not {type(value).__name__}")


@attrs.define(eq=False)
class Edge:
    """A rate limiter, a queue of servers, latency and faults in front of the fake API.

    Attributes:
        latency: seconds of processing added to every authenticated request
            within the rate limit (counted against the limit on arrival).
        latency_per_entry: seconds added per imported entry.
        capacity: requests served at once (``None``: any number). The rest
            wait in arrival order, so their latency grows with the queue;
            ``latency`` and ``latency_per_entry`` are each one's service time.
        queue_limit: with ``capacity``, a request arriving while this many
            wait gets 503 with ``Retry-After: 1`` (``None``: the queue is unbounded).
        rate_limit: requests allowed per key per window (``None``: no limit
            enforced; the answers still carry rate-limit fields, as the real
            API's always do, of a window of 100,000 requests). A request over
            the limit gets 429 with ``Retry-After`` (whole seconds, rounded
            up). Like a real edge, the limiter decides, and stamps the
            answer's headers, when the request arrives.
        rate_window: the window length in seconds.
        limiter: the limiter's shape: ``"fixed"`` window aligned to the clock,
            ``"anchored"`` fixed window starting at the key's first request,
            ``"sliding"`` log of the last ``rate_window`` seconds, sliding
            ``"counter"`` (two weighted windows), or ``"token"`` bucket
            refilling ``rate_limit / rate_window`` per second (see
            :mod:`sendkit_async.testing._limits` for what each says in its headers).
        burst: a token bucket's capacity.
        rate_headers: ``"x"`` for ``X-RateLimit-Limit/-Remaining/-Reset``,
            ``"ietf"`` for the structured ``RateLimit`` and ``RateLimit-Policy``,
            ``"ietf-fields"`` for ``RateLimit-Limit/-Remaining/-Reset`` with
            ``RateLimit-Policy``, ``"kong"`` for Kong's per-window
            ``X-RateLimit-Limit-Second``/``-Minute`` fields, ``"none"`` for no
            rate-limit fields (a refusal still carries ``Retry-After``).
        reset_style: the reset as a fractional ``"delta"`` (the default),
            whole ``"seconds"`` from now (rounded up), a whole ``"epoch"``
            second, ``"epoch-ms"``, a JavaScript date string (``"js-date"``,
            lemlist's way) or an ``"http-date"``.
        limit_meaning: ``"quota"`` (requests per window) or ``"burst"`` (a
            token bucket's capacity) in the ``Limit`` field.
        retry_after_style: ``"seconds"``, an HTTP ``"date"``, ``"body"`` (no
            header: the wait in the refusal's body as ``error.retry_after``,
            Smartlead's way) or ``"none"``.
        refusal_status: what a request past the limit gets: 429, or 503
            (nginx's default) or 403 (Mailchimp's throttle).
        policy_in_body: a refusal's body names the refused policy, HubSpot's
            way (``"policyName": "SECONDLY"``).
        extra_windows: more fixed windows every request must also pass, as
            ``(limit, seconds)`` pairs (Apollo's per minute, hour and day); the
            ``"kong"`` headers spell each.
        clock_offset: seconds the server's clock runs ahead of the real one
            (negative: behind); windows align to it, epoch resets and dates show it.
        tenant_share: a phantom second client on every key, wanting this share
            (0 to 1) of the rate, evenly spread; it retries what it is refused.
        fail_rate: share of requests answered with an injected 500/502/503.
        drop_rate: share of requests whose connection is dropped unanswered.
        seed: makes the injected faults repeatable.

    Raises:
        ValidationError: a knob out of its range.
    """

    latency: float = 0.0
    latency_per_entry: float = 0.0
    capacity: int | None = None
    queue_limit: int | None = None
    rate_limit: int | None = None
    rate_window: float = 1.0
    limiter: LimiterShape = "fixed"
    burst: int = 1
    rate_headers: HeaderStyle = "x"
    reset_style: ResetStyle = "delta"
    limit_meaning: LimitMeaning = "quota"
    retry_after_style: RetryAfterStyle = "seconds"
    refusal_status: int = 429
    policy_in_body: bool = False
    extra_windows: Sequence[tuple[int, float]] = attrs.field(default=(), converter=tuple)
    clock_offset: float = 0.0
    tenant_share: float = 0.0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int | None = attrs.field(default=None, validator=_seed)
    spelling: Spelling = attrs.field(init=False)
    rng: random.Random = attrs.field(init=False)
    stats: ServerStats = attrs.field(init=False, factory=ServerStats)
    clock: Clock = attrs.field(init=False, factory=SystemClock)
    _serving: int = attrs.field(init=False, default=0)
    _queue: collections.deque[asyncio.Future[None]] = attrs.field(init=False, factory=collections.deque)
    _limiters: dict[tuple[str, int | None], Limiter] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        if (self.capacity is not None and self.capacity < 1) or (
            self.queue_limit is not None and self.queue_limit < 0
        ):
            raise ValidationError("capacity must be at least 1 and queue_limit 0 or more")
        if self.rate_window <= 0 or self.burst < 1 or not 0 <= self.tenant_share < 1:
            raise ValidationError("rate_window must be positive, burst at least 1, tenant_share in [0, 1)")
        if self.limiter not in LIMITER_SHAPES:
            raise ValidationError(
                f"unknown limiter {self.limiter!r}; expected one of {', '.join(LIMITER_SHAPES)}"
            )
        if self.refusal_status not in REFUSAL_STATUSES:
            raise ValidationError(
                f"refusal_status must be one of {REFUSAL_STATUSES}, got {self.refusal_status!r}"
            )
        if any(count < 1 or seconds <= 0 for count, seconds in self.extra_windows):
            raise ValidationError("extra_windows are (limit >= 1, seconds > 0) pairs")
        self.spelling = Spelling(
            style=self.rate_headers,
            reset=self.reset_style,
            limit=self.limit_meaning,
            retry_after=self.retry_after_style,
            clock_offset=self.clock_offset,
            status=self.refusal_status,
            policy_in_body=self.policy_in_body,
        )
        self.rng = random.Random(self.seed)  # noqa: S311 - fault injection, not cryptography

    def bind(self, clock: Clock, stats: ServerStats) -> None:
        """Serve in front of one server: its clock (latency, windows) and its counters."""
        self.clock, self.stats = clock, stats

    def now(self) -> float:
        """The server's epoch seconds (its clock may run ahead of or behind the real one)."""
        return self.clock.wall() + self.spelling.clock_offset

    def admit(self, key: str) -> dict[str, str]:
        """Count a request on arrival and return the fields its answer carries.

        Raises:
            RateLimitedError: past the key's limit.
        """
        limiter = self._limiter(key)
        now = self.now()
        verdict = limiter.hit(now)
        spelling = self.spelling
        headers = spelling.headers(limiter.state(now), now, states_of(limiter, now))
        if not verdict.allowed:
            self.stats.rate_limited += 1
            window = verdict.window or self.rate_window
            extra, fields = spelling.refusal(verdict.retry_after, now, window)
            raise RateLimitedError(
                spelling.status,
                f"Rate limit of {self.rate_limit} requests per {self.rate_window:g}s exceeded",
                headers=headers | extra,
                fields=fields,
            )
        return headers

    def _limiter(self, key: str) -> Limiter:
        """The key's limiter, made on its first request (knobs changed later apply to new keys).

        Without a ``rate_limit`` it is a fixed window of 100,000 requests: as
        the real API's, every answer carries rate-limit fields.
        """
        found = self._limiters.get((key, self.rate_limit))
        if found is None:
            generous = self.rate_limit is None
            found = self._limiters[(key, self.rate_limit)] = make_limiter(
                "fixed" if generous else self.limiter,
                GENEROUS_LIMIT if self.rate_limit is None else self.rate_limit,
                self.rate_window,
                burst=self.burst,
                tenant_share=0.0 if generous else self.tenant_share,
                start=self.now(),
                extra_windows=() if generous else tuple(self.extra_windows),
            )
        return found

    async def process(self, request: web.Request) -> bool:
        """Spend the request's processing time, then its injected fault: ``True`` if its connection dropped.

        Raises:
            APIError: an injected 500, 502 or 503.
        """
        if self.latency:
            await self.clock.sleep(self.latency)
        if self.drop_rate and self.rng.random() < self.drop_rate:
            self.stats.dropped += 1
            if request.transport is not None:
                request.transport.abort()
            return True
        if self.fail_rate and self.rng.random() < self.fail_rate:
            self.stats.injected_errors += 1
            raise APIError(self.rng.choice((500, 502, 503)), "injected fault")
        return False

    @contextlib.asynccontextmanager
    async def served(self) -> AsyncIterator[None]:
        """One of ``capacity`` servers for the request, after those that arrived before it.

        Raises:
            OverloadedError: ``queue_limit`` requests already wait.
        """
        if self.capacity is None:
            yield
            return
        stats = self.stats
        if self._serving >= self.capacity or self._queue:
            if self.queue_limit is not None and len(self._queue) >= self.queue_limit:
                stats.overloaded += 1
                raise OverloadedError(503, f"server busy: {len(self._queue)} requests queued")
            turn = asyncio.get_running_loop().create_future()
            self._queue.append(turn)
            stats.queued += 1
            stats.max_queued = max(stats.max_queued, stats.queued)
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self._serving -= 1  # given a server, then cancelled: hand it on
                    self._next()
                else:
                    self._queue.remove(turn)
                raise
            finally:
                stats.queued -= 1
        else:
            self._serving += 1
        try:
            yield
        finally:
            self._serving -= 1
            self._next()

    def _next(self) -> None:
        while self._queue and self._serving < (self.capacity or 0):
            turn = self._queue.popleft()
            if not turn.done():
                self._serving += 1
                turn.set_result(None)

"""The async session wrapper: the one place that sends HTTP requests.

It builds the auth headers, applies timeouts, retries per :mod:`._retry`,
asks the client's rate budget (:mod:`._budget`) before every attempt and
tells it every answer, remembers the last rate-limit headers, and hands
each attempt to the client's transport (:mod:`._transport`, the one place
that touches aiohttp), whose answer :mod:`._answers` maps onto
:mod:`._errors`. Endpoint coroutines call :meth:`Session.request`.
"""

from __future__ import annotations

import enum
import platform
import random
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import anyio
import attrs
import orjson
from yarl import URL

from ._answers import decode, redact, request_id, status_error
from ._budget import Lane, LocalBudget, Observation, Permit, RateBudget
from ._clock import Clock, SystemClock, at_most
from ._config import DEFAULT_MAX_CONCURRENCY, ClientConfig, RetryPolicy, Timeout
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BudgetTimeoutError,
    ClientClosedError,
    SendKitError,
    TransportError,
    TransportTimeoutError,
)
from ._flow import AdaptiveLimit, Concurrency, FixedLimit, InFlight
from ._logs import logger
from ._rate import RateLimit
from ._retry import next_delay, parse_rate_limit
from ._tracing import attempt_span, record_attempt
from ._transport import AiohttpTransport, AsyncTransport, WireRequest, WireResponse
from ._types import JSON, NOT_GIVEN, NotGiven
from ._version import VERSION
from .models import ResponseInfo

__all__ = ["CallStats", "Session", "Transport"]


def _user_agent() -> str:
    return f"sendkit-async/{VERSION} Python/{platform.python_version()} aiohttp/{aiohttp.__version__}"


@attrs.define
class CallStats:
    """Attempts made through one session copy, counted as they happen.

    The bulk engine gives each batch a session copy with its own ``CallStats``
    (``session.with_options(stats=CallStats())``) to report its requests,
    retries and 429s.
    """

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


class Transport:
    """What every ``with_options`` copy shares: the wire, the rate budget, the adaptive in-flight limit.

    ``wire`` is the :class:`~._transport.AsyncTransport` each attempt goes
    through (an :class:`~._transport.AiohttpTransport` by default); closing
    closes it.
    """

    __slots__ = ("_adaptive", "_closed", "budget", "max_concurrency", "rate_limit", "wire")

    def __init__(
        self,
        wire: AsyncTransport | None = None,
        *,
        budget: RateBudget | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self.wire: AsyncTransport = wire if wire is not None else AiohttpTransport()
        self._closed = False
        self.rate_limit: RateLimit | None = None
        self.budget: RateBudget = budget if budget is not None else LocalBudget()
        self.max_concurrency = max_concurrency
        self._adaptive: AdaptiveLimit | None = None

    def adaptive_limit(self, clock: Clock) -> AdaptiveLimit:
        """The in-flight limit every ``concurrency="auto"`` helper of this client shares.

        One per client, because the server that saturates is one: two jobs
        at once share one limit, as they share one rate budget.
        """
        if self._adaptive is None:
            self._adaptive = AdaptiveLimit(
                clock=clock, rate=self._allowed_rate, max_limit=self.max_concurrency
            )
        return self._adaptive

    @property
    def in_flight_limit(self) -> int | None:
        """The shared adaptive limit now, ``None`` before any helper used it."""
        return None if self._adaptive is None else self._adaptive.limit

    def _allowed_rate(self) -> float | None:
        interval = self.budget.snapshot().interval
        return 1.0 / interval if interval > 0 else None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def open(self) -> None:
        """Open the pool now (inside the running event loop), where the wire has one.

        Raises:
            ClientClosedError: the client was closed.
        """
        self._check_open()
        if isinstance(self.wire, AiohttpTransport):
            self.wire.open()

    async def send(self, request: WireRequest) -> WireResponse:
        """One attempt through the wire (see :class:`~._transport.AsyncTransport`)."""
        self._check_open()
        return await self.wire.send(request)

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this SendKit client is closed; create a new one")

    async def close(self) -> None:
        """Close the wire (a borrowed aiohttp session stays open); idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.wire.aclose()


def _query(params: Mapping[str, Any] | None) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None or isinstance(value, NotGiven):
            continue
        if isinstance(value, bool):
            query[key] = "true" if value else "false"
        elif isinstance(value, enum.Enum):
            query[key] = str(value.value)
        else:
            query[key] = str(value)
    return query


@attrs.frozen
class Reply:
    """A call's decoded body (``data``) and the 2xx answer it came in (``response``)."""

    data: JSON
    response: ResponseInfo


class Session:
    """Sends authenticated requests with retries; fed to every endpoint coroutine.

    Args:
        config: the client's validated settings.
        transport: the pool and the rate budget, shared by every copy.
        clock: where retry waits sleep (tests pass a fake one).
        lane: the budget lane its calls wait in (bulk helpers use ``Lane.BULK``).
        budget: a budget for this copy's calls instead of the transport's
            (the bulk engine wraps the shared one in a job's own ``max_rate``).
        stats: counts this copy's attempts when given.
        flow: the in-flight limit told each attempt's latency (bulk helpers set it).
        rand: the jitter source for backoff.
    """

    __slots__ = ("_budget", "_clock", "_headers", "_rand", "_transport", "config", "flow", "lane", "stats")

    def __init__(
        self,
        config: ClientConfig,
        transport: Transport,
        *,
        clock: Clock | None = None,
        lane: Lane = Lane.INTERACTIVE,
        budget: RateBudget | None = None,
        stats: CallStats | None = None,
        flow: InFlight | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.flow = flow
        self._transport = transport
        self._clock: Clock = clock or SystemClock()
        self.lane = lane
        self._budget = budget
        self.stats = stats
        self._rand = rand
        self._headers = self._build_headers()

    def __repr__(self) -> str:
        return f"Session(base_url={str(self.config.base_url)!r}, workspace_id={self.config.workspace_id!r})"

    def _build_headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": _user_agent(),
            **self.config.headers,
            "X-Api-Key": self.config.api_key,
            "Authorization": f"Bearer {self.config.api_key}",
        }
        if self.config.workspace_id is not None:
            headers["X-Workspace-Id"] = self.config.workspace_id
        return headers

    @property
    def clock(self) -> Clock:
        """The clock used for backoff (and by the bulk engine for pacing)."""
        return self._clock

    @property
    def transport(self) -> Transport:
        """The shared pool and rate-limit memory."""
        return self._transport

    @property
    def budget(self) -> RateBudget:
        """The rate budget this session's attempts spend."""
        return self._budget if self._budget is not None else self._transport.budget

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate-limit headers of the latest answer that carried them."""
        return self._transport.rate_limit

    def in_flight(self, concurrency: Concurrency) -> InFlight:
        """The in-flight limit a bulk helper runs under: its own fixed cap, or the client's adaptive one."""
        if concurrency == "auto":
            return self._transport.adaptive_limit(self._clock)
        return FixedLimit(concurrency)

    def with_options(
        self,
        *,
        timeout: Timeout | float | NotGiven = NOT_GIVEN,
        retry: RetryPolicy | NotGiven = NOT_GIVEN,
        headers: Mapping[str, str] | NotGiven = NOT_GIVEN,
        lane: Lane | NotGiven = NOT_GIVEN,
        budget: RateBudget | NotGiven | None = NOT_GIVEN,
        stats: CallStats | NotGiven | None = NOT_GIVEN,
        flow: InFlight | NotGiven | None = NOT_GIVEN,
    ) -> Session:
        """A copy with other options, sharing this session's connection pool and budget."""
        changes: dict[str, Any] = {}
        if not isinstance(timeout, NotGiven):
            changes["timeout"] = (
                Timeout(total=float(timeout)) if isinstance(timeout, (int, float)) else timeout
            )
        if not isinstance(retry, NotGiven):
            changes["retry"] = retry
        if not isinstance(headers, NotGiven):
            changes["headers"] = {**self.config.headers, **headers}
        return Session(
            attrs.evolve(self.config, **changes) if changes else self.config,
            self._transport,
            clock=self._clock,
            lane=self.lane if isinstance(lane, NotGiven) else lane,
            budget=self._budget if isinstance(budget, NotGiven) else budget,
            stats=self.stats if isinstance(stats, NotGiven) else stats,
            flow=self.flow if isinstance(flow, NotGiven) else flow,
            rand=self._rand,
        )

    def per_call(self, timeout: Timeout | float | None, extra_headers: Mapping[str, str] | None) -> Session:
        """This session for one call: a copy with its ``timeout=`` and ``extra_headers=`` when given.

        Every endpoint takes both. ``timeout`` is a :class:`Timeout` or seconds
        per attempt; ``extra_headers`` go on top of the client's headers (the
        auth headers cannot be overridden).
        """
        if timeout is None and extra_headers is None:
            return self
        return self.with_options(
            timeout=NOT_GIVEN if timeout is None else timeout,
            headers=NOT_GIVEN if extra_headers is None else extra_headers,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: JSON = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
    ) -> Reply:
        """Send one API call, retrying transient failures: the decoded body and the answer it came in.

        Args:
            method: HTTP method.
            path: API path such as ``/v1/dnc``.
            json: the body, serialised once with orjson; ``None`` sends none.
            content: a JSON body already serialised (instead of ``json``).
            params: query parameters; ``None`` values are left out.

        Raises:
            APIStatusError: a subclass matching the final non-2xx status.
            APIConnectionError: no answer after the retries (``APITimeoutError``
                when it was a timeout).
            UnexpectedResponseError: a 2xx body that is not JSON.
            ClientClosedError: the client was closed.
        """
        method = method.upper()
        body = content if content is not None else None if json is None else orjson.dumps(json)
        url = self.config.base_url / path.lstrip("/")
        query = _query(params)
        policy = self.config.retry
        budget = self.budget
        retries = rate_limit_retries = 0
        queued = 0.0  # seconds spent waiting for budget slots, all attempts together
        while True:
            attempt = 1 + retries + rate_limit_retries
            with attempt_span(method, path) as span:
                asked = self._clock.monotonic()
                permit = await self._slot(budget, method, path, queued)
                waited = self._clock.monotonic() - asked
                queued += waited
                span["sendkit.budget_wait_seconds"] = waited
                status, outcome, retry_after = await self._attempt_observed(
                    budget, permit, method, path, url, body, query, attempt=attempt, trace=span
                )
                record_attempt(
                    span, {"http.response.status_code": status, "sendkit.retry_count": attempt - 1}
                )
            if self.stats is not None:
                self.stats.requests += 1
                self.stats.rate_limited += status == 429  # noqa: PLR2004
            if isinstance(outcome, Reply):
                return outcome
            delay = next_delay(
                status=status,
                retries=retries,
                rate_limit_retries=rate_limit_retries,
                retry_after=retry_after,
                policy=policy,
                rand=self._rand,
            )
            if delay is None:
                raise outcome
            if self.stats is not None:
                self.stats.retries += 1
            if status == 429:  # noqa: PLR2004
                rate_limit_retries += 1
                # The budget holds every caller, this one included, until the
                # server's pause is over; waiting here too would only add to it.
                delay = 0.0
            else:
                retries += 1
            what = status if status is not None else type(outcome).__name__
            if status == 429:  # noqa: PLR2004
                paused = budget.snapshot().paused_for
                logger.warning(
                    "%s %s failed (429); retrying when the rate budget allows (paused %.2fs)",
                    method,
                    path,
                    paused,
                )
            else:
                logger.warning("%s %s failed (%s); retrying in %.2fs", method, path, what, delay)
            if delay:
                await self._clock.sleep(delay)

    async def _slot(self, budget: RateBudget, method: str, path: str, queued: float) -> Permit:
        """The budget's permit for the next attempt, within what is left of ``max_queue_wait``.

        Raises:
            BudgetTimeoutError: the call's waits reached ``max_queue_wait``.
        """
        limit = self.config.retry.max_queue_wait
        asked = self._clock.monotonic()
        left = None if limit is None else limit - queued
        permit = await at_most(self._clock, left, lambda: budget.acquire(self.lane))
        if permit is not None:
            return permit
        waited = queued + self._clock.monotonic() - asked
        raise BudgetTimeoutError(
            f"{method} {path} waited {waited:.2f}s for its slot in the rate budget, "
            f"past max_queue_wait={limit:g}s; nothing more was sent",
            method=method,
            path=path,
            waited=waited,
            limit=float(limit or 0.0),
        )

    async def _attempt_observed(
        self,
        budget: RateBudget,
        permit: Permit,
        method: str,
        path: str,
        url: URL,
        body: bytes | None,
        query: dict[str, str],
        *,
        attempt: int,
        trace: dict[str, Any],
    ) -> tuple[int | None, JSON, float | None]:
        """One attempt under ``permit``, whose outcome the budget always hears, cancelled or not.

        The in-flight limit, when there is one, hears when it left and how it
        ended (a cancelled attempt tells it nothing about the server).
        """
        sent_at = self._clock.wall()
        flow = self.flow
        token = flow.sent() if flow is not None else 0
        try:
            status, rate, outcome = await self._attempt(
                method, path, url, body, query, attempt=attempt, trace=trace
            )
        except BaseException:
            if flow is not None:
                flow.forget(token)
            with anyio.CancelScope(shield=True):
                await budget.observe(permit, Observation.of(None, sent_at=sent_at, received_at=sent_at))
            raise
        if flow is not None:
            flow.answered(token, size=len(body or b""), status=status)
        retry_after = outcome.retry_after if isinstance(outcome, APIStatusError) else None
        observation = Observation.of(
            status, sent_at=sent_at, received_at=self._clock.wall(), rate=rate, retry_after=retry_after
        )
        await budget.observe(permit, observation)
        return status, outcome, retry_after

    async def _attempt(
        self,
        method: str,
        path: str,
        url: URL,
        body: bytes | None,
        query: dict[str, str],
        *,
        attempt: int = 1,
        trace: dict[str, Any] | None = None,
    ) -> tuple[int | None, RateLimit | None, JSON]:
        """One exchange through the transport, never raising for a failed answer.

        Returns its status (``None`` for no answer), its rate-limit headers,
        and the decoded body or the error it came to (see :mod:`._answers`).
        """
        key = self.config.api_key
        request = WireRequest(
            method, url.with_query(query) if query else url, self._headers, body, self.config.timeout
        )
        started = self._clock.monotonic()
        try:
            response = await self._transport.send(request)
        except TransportTimeoutError:
            logger.info("%s %s -> no answer in time (attempt %d)", method, path, attempt)
            return None, None, APITimeoutError(f"{method} {path} timed out", method=method, path=path)
        except TransportError as exc:
            detail = redact(str(exc), key) or type(exc).__name__
            logger.info("%s %s -> no answer: %s (attempt %d)", method, path, detail, attempt)
            error = APIConnectionError(f"{method} {path} failed: {detail}", method=method, path=path)
            return None, None, error
        now = self._clock.monotonic()
        status = response.status
        rate = parse_rate_limit(response.headers, observed_at=now, now=self._clock.wall())
        if rate is not None:
            self._transport.rate_limit = rate
        answer_id = request_id(response, key)
        if answer_id is not None and trace is not None:
            trace["sendkit.request_id"] = answer_id
        logger.info(
            "%s %s -> %d in %.3fs (attempt %d%s)",
            method,
            path,
            status,
            now - started,
            attempt,
            "" if answer_id is None else f", request id {answer_id}",
        )
        if 200 <= status < 300:  # noqa: PLR2004
            data = decode(response, key)
            if isinstance(data, SendKitError):
                return status, rate, data
            return status, rate, Reply(data, ResponseInfo(status, response.headers, answer_id))
        return (
            status,
            rate,
            status_error(
                response,
                method=method,
                path=path,
                key=key,
                rate=rate,
                request_id=answer_id,
                wall=self._clock.wall(),
            ),
        )

"""The async session wrapper: the one place that sends HTTP requests.

It owns (or borrows) the ``aiohttp.ClientSession``, builds the auth headers,
applies timeouts, retries per :mod:`._retry`, remembers the last rate-limit
headers and maps failures onto :mod:`._errors`. Endpoint coroutines call
:meth:`Session.request`; nothing else touches aiohttp.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import platform
import random
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import attrs
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from ._clock import Clock, SystemClock
from ._config import ClientConfig, RetryPolicy, Timeout
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    SendKitError,
    UnexpectedResponseError,
    status_error_class,
)
from ._retry import next_delay, parse_rate_limit, parse_retry_after
from ._types import JSON, NOT_GIVEN, NotGiven
from .models import RateLimit

if TYPE_CHECKING:
    from .bulk._limiter import RateLimiter

__all__ = ["Attempt", "RequestHooks", "Session", "Transport"]

logger = logging.getLogger("sendkit_async")

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-correlation-id", "x-amzn-requestid")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_EXCERPT = 200


def _user_agent() -> str:
    from . import __version__  # noqa: PLC0415 - the package imports this module

    return f"sendkit-async/{__version__} Python/{platform.python_version()} aiohttp/{aiohttp.__version__}"


@attrs.frozen
class Attempt:
    """What one HTTP attempt came to, as request hooks see it.

    Attributes:
        method: HTTP method.
        path: API path, without the base URL.
        status: the answer's status, ``None`` when none arrived.
        rate_limit: the answer's rate-limit headers, if any.
        retry_after: the wait the server asked for, if any.
        delay: seconds until the next attempt, ``None`` when there is none.
        sent_at: when the attempt started, on the session's monotonic clock.
    """

    method: str
    path: str
    status: int | None
    rate_limit: RateLimit | None
    retry_after: float | None
    delay: float | None
    sent_at: float


class RequestHooks(Protocol):
    """Lets a caller pace and observe attempts without owning the request loop.

    The bulk engine plugs its shared rate limiter in here, so that batches go
    through the same :meth:`Session.request` as every other call.
    """

    async def before_attempt(self) -> None:
        """Wait for permission to send (may sleep; must let cancellation through)."""

    def after_attempt(self, attempt: Attempt) -> None:
        """See how an attempt ended; called before any retry wait."""


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class Transport:
    """The connection pool and what is shared across ``with_options`` copies.

    A pool passed in by the caller is borrowed: :meth:`close` leaves it open.
    """

    __slots__ = ("_borrowed", "_connection_limit", "_session", "_state", "limiter", "rate_limit")

    def __init__(self, session: aiohttp.ClientSession | None = None, *, connection_limit: int = 100) -> None:
        self._session = session
        self._borrowed = session is not None
        self._connection_limit = connection_limit
        self._state = _State.UNOPENED
        self.rate_limit: RateLimit | None = None
        # The bulk engine's shared limiter, made on first use: one per pool.
        self.limiter: RateLimiter | None = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._state is _State.CLOSED

    def session(self) -> aiohttp.ClientSession:
        """The pool, opened on first use (inside the running event loop)."""
        if self._state is _State.CLOSED:
            raise ClientClosedError("this SendKit client is closed; create a new one")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit),
                raise_for_status=False,
            )
        self._state = _State.OPEN
        return self._session

    async def close(self) -> None:
        """Close an owned pool; idempotent."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        if self._session is not None and not self._borrowed:
            await self._session.close()


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret and secret in text else text


def _excerpt(text: str) -> str:
    plain = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return plain if len(plain) <= _EXCERPT else plain[: _EXCERPT - 1] + "…"


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


class Session:
    """Sends authenticated requests with retries; fed to every endpoint coroutine."""

    __slots__ = ("_clock", "_headers", "_hooks", "_rand", "_transport", "config")

    def __init__(
        self,
        config: ClientConfig,
        transport: Transport,
        *,
        clock: Clock | None = None,
        hooks: RequestHooks | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._transport = transport
        self._clock: Clock = clock or SystemClock()
        self._hooks = hooks
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
    def rate_limit(self) -> RateLimit | None:
        """The rate-limit headers of the latest answer that carried them."""
        return self._transport.rate_limit

    def with_options(
        self,
        *,
        timeout: Timeout | float | NotGiven = NOT_GIVEN,
        retry: RetryPolicy | NotGiven = NOT_GIVEN,
        headers: Mapping[str, str] | NotGiven = NOT_GIVEN,
        hooks: RequestHooks | NotGiven | None = NOT_GIVEN,
    ) -> Session:
        """A copy with other options, sharing this session's connection pool."""
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
            attrs.evolve(self.config, **changes),
            self._transport,
            clock=self._clock,
            hooks=self._hooks if isinstance(hooks, NotGiven) else hooks,
            rand=self._rand,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: JSON = None,
        params: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Send one API call, retrying transient failures, and return the decoded body.

        Args:
            method: HTTP method.
            path: API path such as ``/v1/dnc``.
            json: the body, serialised once with orjson; ``None`` sends none.
            params: query parameters; ``None`` values are left out.

        Raises:
            APIStatusError: a subclass matching the final non-2xx status.
            APIConnectionError: no answer after the retries (``APITimeoutError``
                when it was a timeout).
            UnexpectedResponseError: a 2xx body that is not JSON.
            ClientClosedError: the client was closed.
        """
        method = method.upper()
        body = None if json is None else orjson.dumps(json)
        url = self.config.base_url / path.lstrip("/")
        query = _query(params)
        policy = self.config.retry
        retries = rate_limit_retries = 0
        while True:
            if self._hooks is not None:
                await self._hooks.before_attempt()
            sent_at = self._clock.monotonic()
            status, rate, outcome = await self._attempt(method, path, url, body, query)
            failed = isinstance(outcome, SendKitError)
            retry_after = outcome.retry_after if isinstance(outcome, APIStatusError) else None
            delay = (
                next_delay(
                    status=status,
                    retries=retries,
                    rate_limit_retries=rate_limit_retries,
                    retry_after=retry_after,
                    policy=policy,
                    rand=self._rand,
                )
                if failed
                else None
            )
            if self._hooks is not None:
                self._hooks.after_attempt(Attempt(method, path, status, rate, retry_after, delay, sent_at))
            if not failed:
                return outcome
            if delay is None:
                raise outcome
            if status == 429:  # noqa: PLR2004
                rate_limit_retries += 1
            else:
                retries += 1
            logger.warning(
                "%s %s failed (%s); retrying in %.2fs",
                method,
                path,
                status if status is not None else type(outcome).__name__,
                delay,
            )
            await self._clock.sleep(delay)

    async def _attempt(
        self, method: str, path: str, url: URL, body: bytes | None, query: dict[str, str]
    ) -> tuple[int | None, RateLimit | None, JSON]:
        """One HTTP exchange, never raising for a failed answer.

        Returns its status (``None`` for no answer), its rate-limit headers,
        and the decoded body or the error it came to.
        """
        timeout = aiohttp.ClientTimeout(total=self.config.timeout.total, connect=self.config.timeout.connect)
        started = self._clock.monotonic()
        try:
            async with self._transport.session().request(
                method, url, data=body, params=query, headers=self._headers, timeout=timeout
            ) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except asyncio.TimeoutError:
            return None, None, APITimeoutError(f"{method} {path} timed out", method=method, path=path)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            detail = _redact(str(exc), self.config.api_key) or type(exc).__name__
            error = APIConnectionError(f"{method} {path} failed: {detail}", method=method, path=path)
            return None, None, error
        now = self._clock.monotonic()
        rate = parse_rate_limit(headers, observed_at=now, now=self._clock.wall())
        if rate is not None:
            self._transport.rate_limit = rate
        logger.debug("%s %s -> %d in %.3fs", method, path, status, now - started)
        if 200 <= status < 300:  # noqa: PLR2004
            return status, rate, self._decode(raw, status)
        return status, rate, self._status_error(method, path, status, headers, raw, rate)

    def _decode(self, raw: bytes, status: int) -> JSON:
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            text = _redact(raw.decode("utf-8", "replace"), self.config.api_key)
            return UnexpectedResponseError(
                f"the API answered {status} with a body that is not JSON: {_excerpt(text)!r}",
                status=status,
                body=text,
            )

    def _status_error(
        self,
        method: str,
        path: str,
        status: int,
        headers: CIMultiDictProxy[str],
        raw: bytes,
        rate: RateLimit | None,
    ) -> APIStatusError:
        key = self.config.api_key
        text = _redact(raw.decode("utf-8", "replace"), key)
        error: str | None = None
        message = ""
        code: Any = None
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict):
            # The documented shape is {"error", "message", "code"}; RFC 7807
            # problem documents say "title" and "detail" instead.
            raw_error = decoded.get("error", decoded.get("title"))
            if isinstance(raw_error, dict):  # {"error": {"message": ...}} from some gateways
                message = str(raw_error.get("message", ""))
                raw_error = raw_error.get("type") or raw_error.get("code")
            error = None if raw_error is None else _redact(str(raw_error), key)
            message = _redact(str(decoded.get("message") or decoded.get("detail") or message), key)
            code = decoded.get("code", decoded.get("status"))
        if not message:
            message = _excerpt(text) or (headers.get("Reason") or "")
        request_id = next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)
        return status_error_class(status)(
            status=status,
            method=method,
            path=path,
            error=error,
            message=message,
            code=code,
            request_id=request_id,
            rate_limit=rate,
            retry_after=parse_retry_after(headers, self._clock.wall()),
            body=text,
        )

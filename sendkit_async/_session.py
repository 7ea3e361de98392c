"""The async session wrapper: the one place that sends HTTP requests.

:meth:`Session.request` sends one API call: it checks what it was given,
builds the auth headers, asks the rate budget (:mod:`._budget`) before every
attempt and tells it every answer, retries per :mod:`._retry`, hands each
attempt to the client's wire (:mod:`._transport`), and maps the answer through
:mod:`._answers` onto :mod:`._errors`. Whatever else watches attempts (a bulk
job's counts, the in-flight limit, tracing, the latest rate-limit headers)
is a hook (:mod:`._hooks`). Endpoint coroutines call :meth:`Session.request`.
"""

from __future__ import annotations

import contextlib
import platform
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
import anyio
import attrs
import orjson
from yarl import URL

from ._answers import decode, json_body, redact, redact_headers, request_id, status_error
from ._budget import Lane, Observation, Permit, RateBudget
from ._clock import Clock, SystemClock, at_most
from ._config import ClientConfig, RetryPolicy, Timeout
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BudgetTimeoutError,
    SendKitError,
    TransportError,
    TransportTimeoutError,
    ValidationError,
)
from ._fields import parse_rate_limit
from ._hooks import Attempt, AttemptHook
from ._http import as_timeout, check_headers, check_method, check_path, query
from ._logs import logger
from ._retry import next_delay
from ._scope import ClientScope
from ._throttle import MAYBE_REFUSALS, said_so
from ._transport import WireRequest
from ._types import JSON, NOT_GIVEN, NotGiven
from ._version import VERSION
from .models import ResponseInfo

__all__ = ["Reply", "Session"]

_RATE_LIMITED = 429


def _user_agent() -> str:
    return f"sendkit-async/{VERSION} Python/{platform.python_version()} aiohttp/{aiohttp.__version__}"


@attrs.frozen
class Reply:
    """A call's decoded body (``data``) and the 2xx answer it came in (``response``)."""

    data: JSON
    response: ResponseInfo


class Session:
    """Sends authenticated requests with retries; fed to every endpoint coroutine.

    Args:
        config: the client's validated settings.
        scope: the wire, the event loop and the background tasks every copy shares.
        budget: the rate budget asked before each attempt and told each answer.
        clock: where retry waits sleep (tests pass a fake one).
        lane: the budget lane its calls wait in (bulk helpers use ``Lane.BULK``).
        hooks: what watches each attempt (see :mod:`._hooks`).
        rand: the jitter source for backoff.
    """

    __slots__ = ("_headers", "_rand", "budget", "clock", "config", "hooks", "lane", "scope")

    def __init__(
        self,
        config: ClientConfig,
        scope: ClientScope,
        *,
        budget: RateBudget,
        clock: Clock | None = None,
        lane: Lane = Lane.INTERACTIVE,
        hooks: Sequence[AttemptHook] = (),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.scope = scope
        self.budget = budget
        self.clock: Clock = clock or SystemClock()
        self.lane = lane
        self.hooks = tuple(hooks)
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

    def with_options(
        self,
        *,
        timeout: Timeout | float | NotGiven | None = NOT_GIVEN,
        retry: RetryPolicy | NotGiven = NOT_GIVEN,
        headers: Mapping[str, str] | NotGiven = NOT_GIVEN,
        lane: Lane | NotGiven = NOT_GIVEN,
        budget: RateBudget | NotGiven = NOT_GIVEN,
        hooks: Sequence[AttemptHook] | NotGiven = NOT_GIVEN,
    ) -> Session:
        """A copy with other options, sharing this session's scope (its pool, loop and tasks).

        ``timeout=None`` means the default :class:`Timeout`; ``headers`` go on
        top of this session's own.

        Raises:
            ValidationError: a timeout, headers, retry policy or lane of the wrong kind.
        """
        changes: dict[str, Any] = {}
        if not isinstance(timeout, NotGiven):
            changes["timeout"] = as_timeout(timeout)
        if not isinstance(retry, NotGiven):
            if not isinstance(retry, RetryPolicy):
                raise ValidationError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
            changes["retry"] = retry
        if not isinstance(headers, NotGiven):
            changes["headers"] = {**self.config.headers, **check_headers(headers, "headers")}
        if not isinstance(lane, (Lane, NotGiven)):
            raise ValidationError(f"lane must be a Lane, got {lane!r:.40}")
        return Session(
            attrs.evolve(self.config, **changes) if changes else self.config,
            self.scope,
            budget=self.budget if isinstance(budget, NotGiven) else budget,
            clock=self.clock,
            lane=self.lane if isinstance(lane, NotGiven) else lane,
            hooks=self.hooks if isinstance(hooks, NotGiven) else hooks,
            rand=self._rand,
        )

    def per_call(self, timeout: object, extra_headers: object) -> Session:
        """This session for one call: a copy with its ``timeout=`` and ``extra_headers=`` when given.

        Every endpoint takes both. ``timeout`` is a :class:`Timeout` or seconds
        per attempt; ``extra_headers`` go on top of the client's headers (the
        auth headers cannot be overridden: given there, they are left out).

        Raises:
            ValidationError: a timeout that is not one, or headers that are not headers.
        """
        if timeout is None and extra_headers is None:
            return self
        return self.with_options(
            timeout=NOT_GIVEN if timeout is None else as_timeout(timeout),
            headers=NOT_GIVEN if extra_headers is None else check_headers(extra_headers, "extra_headers"),
        )

    def with_hooks(self, *hooks: AttemptHook) -> Session:
        """A copy whose attempts these hooks watch too (after this session's own)."""
        return self.with_options(hooks=(*self.hooks, *hooks))

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
            ValidationError: a method, path or query parameter that is not one (nothing is sent).
            TypeError: a ``json`` body orjson cannot serialise (nothing is sent).
            APIStatusError: a subclass matching the final non-2xx status.
            APIConnectionError: no answer after the retries (``APITimeoutError``
                when it was a timeout).
            UnexpectedResponseError: a 2xx body that is not JSON.
            BudgetTimeoutError: the call waited past ``max_queue_wait`` for the rate budget.
            ClientClosedError: the client was closed.
            ClientLoopError: the client belongs to another event loop.
        """
        method = check_method(method)
        url = self.config.base_url / check_path(path).lstrip("/")
        params_sent = query(params)
        if content is not None and not isinstance(content, bytes):
            raise TypeError(f"content must be bytes, got {type(content).__name__}")
        body = content if content is not None else None if json is None else orjson.dumps(json)
        self.scope.enter()
        if params_sent:
            url = url.with_query(params_sent)
        policy, limits, clock = self.config.retry, self.config.timeout, self.clock
        retries = rate_limit_retries = 0
        queued = 0.0  # seconds spent waiting for budget slots, all attempts together
        started = clock.monotonic()
        refused_since: float | None = None  # when the current run of refusals began
        guessed = 0  # 503s and 403s taken for a limiter's refusals (see _throttle)
        while True:
            asked = clock.monotonic()
            permit = await self._slot(method, path, queued)
            waited = clock.monotonic() - asked
            queued += waited
            # The call's own limit counts its attempts and backoff, not its budget waits.
            left = None if limits.call is None else limits.call - (clock.monotonic() - started - queued)
            attempt = Attempt(method, path, 1 + retries + rate_limit_retries, len(body or b""), waited)
            this = limits if left is None else limits.within(left)
            outcome, retry_after = await self._attempt(permit, attempt, url, body, this, guessed)
            if isinstance(outcome, Reply):
                return outcome
            status, refused = attempt.status, attempt.refused
            guessed += refused and status in MAYBE_REFUSALS
            now = clock.monotonic()
            refused_since = (refused_since or now) if refused else None
            delay = next_delay(
                status=status,
                retries=retries,
                rate_limit_retries=rate_limit_retries,
                retry_after=retry_after,
                policy=policy,
                rand=self._rand,
                refused_for=0.0 if refused_since is None else now - refused_since,
                time_left=None if limits.call is None else limits.call - (now - started - queued),
                refused=refused,
            )
            if delay is None:
                raise outcome
            if refused:
                rate_limit_retries += 1
                # The budget holds every caller, this one included, until the
                # server's pause is over; waiting here too would only add to it.
                logger.warning(
                    "%s %s refused (%s); retrying when the rate budget allows (paused %.2fs)",
                    method,
                    path,
                    status,
                    self.budget.snapshot().paused_for,
                )
                continue
            retries += 1
            what = status if status is not None else type(outcome).__name__
            logger.warning("%s %s failed (%s); retrying in %.2fs", method, path, what, delay)
            if delay:
                await self.clock.sleep(delay)

    async def _slot(self, method: str, path: str, queued: float) -> Permit:
        """The budget's permit for the next attempt, within what is left of ``max_queue_wait``.

        Raises:
            BudgetTimeoutError: the call's waits reached ``max_queue_wait``.
        """
        limit = self.config.retry.max_queue_wait
        asked = self.clock.monotonic()
        left = None if limit is None else limit - queued
        budget, lane, clock = self.budget, self.lane, self.clock

        async def give_back(permit: Permit) -> None:
            now = clock.wall()
            await budget.observe(permit, Observation.of(None, sent_at=now, received_at=now))

        permit = await at_most(clock, left, lambda: budget.acquire(lane), give_back)
        if permit is not None:
            return permit
        waited = queued + self.clock.monotonic() - asked
        raise BudgetTimeoutError(
            f"{method} {path} waited {waited:.2f}s for its slot in the rate budget, "
            f"past max_queue_wait={limit:g}s; nothing more was sent",
            method=method,
            path=path,
            waited=waited,
            limit=float(limit or 0.0),
        )

    async def _attempt(
        self,
        permit: Permit,
        attempt: Attempt,
        url: URL,
        body: bytes | None,
        limits: Timeout,
        guessed: int,
    ) -> tuple[Reply | SendKitError, float | None]:
        """One attempt under ``permit``, watched by the hooks; the budget always hears how it ended.

        Returns the reply, or the error the answer (or its absence) came to,
        and the wait it asked for (``Retry-After``, or one its body names).
        ``guessed`` counts the call's 503s and 403s already taken for refusals.
        """
        sent_at = self.clock.wall()
        try:
            with contextlib.ExitStack() as watched:
                for hook in self.hooks:
                    watched.enter_context(hook.attempt(attempt))
                outcome = await self._exchange(attempt, url, body, limits, guessed)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.budget.observe(permit, Observation.of(None, sent_at=sent_at, received_at=sent_at))
            raise
        retry_after = outcome.retry_after if isinstance(outcome, APIStatusError) else None
        observation = Observation.of(
            attempt.status if attempt.answered else None,
            sent_at=sent_at,
            received_at=self.clock.wall(),
            rate=attempt.rate,
            retry_after=retry_after,
            refused=attempt.refused,
        )
        await self.budget.observe(permit, observation)
        return outcome, retry_after

    async def _exchange(
        self, attempt: Attempt, url: URL, body: bytes | None, limits: Timeout, guessed: int
    ) -> Reply | SendKitError:
        """One exchange through the wire (never raising for a failed answer); fills in the attempt."""
        method, path, key = attempt.method, attempt.path, self.config.api_key
        request = WireRequest(method, url, self._headers, body, limits)
        started = self.clock.monotonic()
        try:
            response = await self.scope.wire.send(request)
        except TransportTimeoutError:
            logger.info("%s %s -> no answer in time (attempt %d)", method, path, attempt.number)
            return APITimeoutError(f"{method} {path} timed out", method=method, path=path)
        except TransportError as exc:
            detail = redact(str(exc), key) or type(exc).__name__
            logger.info("%s %s -> no answer: %s (attempt %d)", method, path, detail, attempt.number)
            return APIConnectionError(
                f"{method} {path} failed: {detail}", method=method, path=path, connected=exc.connected
            )
        now = self.clock.monotonic()
        status = response.status
        attempt.status, attempt.answered = status, True
        attempt.rate = rate = parse_rate_limit(response.headers, observed_at=now, now=self.clock.wall())
        answer_id = attempt.request_id = request_id(response, key)
        logger.info(
            "%s %s -> %d in %.3fs (attempt %d%s)",
            method,
            path,
            status,
            now - started,
            attempt.number,
            "" if answer_id is None else f", request id {answer_id}",
        )
        throttles = self.scope.throttles
        if 200 <= status < 300:  # noqa: PLR2004
            throttles.success(now - started, now)
            data = decode(response, key)
            if isinstance(data, SendKitError):
                return data
            return Reply(data, ResponseInfo(status, redact_headers(response.headers, key), answer_id))
        error = status_error(
            response,
            method=method,
            path=path,
            key=key,
            rate=rate,
            request_id=answer_id,
            wall=self.clock.wall(),
        )
        if status == _RATE_LIMITED or status in MAYBE_REFUSALS:
            said = said_so(response.headers, error.body, json_body(response), rate)
            attempt.refused = throttles.refused(
                status, said=said, latency=now - started, now=now, guessed=guessed
            )
        return error

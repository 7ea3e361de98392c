"""The rate limiters a server may run, and the ways servers spell them, over a time you pass in.

The fake server uses them with its clock, and tests drive them on a virtual
clock without any HTTP. Each shape answers :meth:`Limiter.hit` (count a request
or refuse it) and :meth:`Limiter.state` (what the headers would say now).
Times passed in are the *server's* epoch seconds, so a window "aligned to the
clock" starts on the server's whole seconds.

* :class:`FixedWindow`: ``limit`` requests per ``window``, aligned to the
  clock or anchored at the key's first request; ``Remaining`` counts down and
  ``Reset`` is the end of the window.
* :class:`SlidingWindow`: at most ``limit`` requests in any ``window`` seconds
  (a sliding log); ``Reset`` is when the oldest counted request leaves it.
* :class:`SlidingCounter`: the two-window weighted counter many gateways run;
  ``Reset`` is the end of the current window.
* :class:`TokenBucket`: the generic cell rate algorithm, ``limit / window`` per
  second with bursts of ``burst``; ``Remaining`` is the whole tokens left (0
  after each request when ``burst`` is 1) and ``Reset`` is when the next
  request is allowed.

:class:`Tenant` wraps any of them with a phantom second client spending part of
the same key's budget. :class:`Spelling` renders a state the way one server
family does: which fields, the reset as a fractional delta, whole seconds from
now (rounded up), a whole epoch second or epoch milliseconds, ``Limit`` as the
window's quota or the bucket's burst, ``Retry-After`` in seconds or as an HTTP
date, and the server's clock offset from the client's.
"""

from __future__ import annotations

import collections
import email.utils
import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Final, Literal, Protocol, TypeAlias, get_args

import attrs

from sendkit_async._errors import ValidationError

__all__ = [
    "REFUSAL_STATUSES",
    "AllOf",
    "FixedWindow",
    "HeaderStyle",
    "Limiter",
    "LimiterShape",
    "RateState",
    "ResetStyle",
    "SlidingCounter",
    "SlidingWindow",
    "Spelling",
    "Tenant",
    "TokenBucket",
    "Verdict",
    "make_limiter",
    "states_of",
]

HeaderStyle: TypeAlias = Literal["x", "ietf", "ietf-fields", "kong", "none"]
ResetStyle: TypeAlias = Literal["delta", "seconds", "epoch", "epoch-ms", "js-date", "http-date"]
LimitMeaning: TypeAlias = Literal["quota", "burst"]
RetryAfterStyle: TypeAlias = Literal["seconds", "date", "body", "none"]
LimiterShape: TypeAlias = Literal["fixed", "anchored", "sliding", "counter", "token"]
LIMITER_SHAPES: Final = get_args(LimiterShape)
HEADER_STYLES: Final = get_args(HeaderStyle)
RESET_STYLES: Final = get_args(ResetStyle)
RETRY_AFTER_STYLES: Final = get_args(RetryAfterStyle)
# What a refusal may answer: 429, nginx's default 503, or a throttling 403 (Mailchimp's).
REFUSAL_STATUSES: Final = (429, 503, 403)
# Kong's names for a window's period in X-RateLimit-Limit-{Period}.
_PERIODS: Final = {1.0: "Second", 60.0: "Minute", 3600.0: "Hour", 86400.0: "Day"}
# HubSpot's names for a refused policy, in the 429's body.
_POLICIES: Final = {1.0: "SECONDLY", 10.0: "TEN_SECONDLY", 60.0: "MINUTELY", 86400.0: "DAILY"}
_EPSILON: Final = 1e-9


@attrs.frozen
class RateState:
    """What the rate-limit headers of an answer say.

    Attributes:
        limit: requests per window (a token bucket's refill per window).
        remaining: requests allowed right now.
        reset: seconds until the window ends (fixed, counter), the oldest
            request leaves it (sliding), or the next request is allowed (bucket).
        window: the policy's window in seconds.
        burst: a token bucket's capacity (``limit`` for the window shapes).
    """

    limit: int
    remaining: int
    reset: float
    window: float
    burst: int = 0


@attrs.frozen
class Verdict:
    """The limiter's answer to one request: let through, or refused with a wait (and the refusing window)."""

    allowed: bool
    retry_after: float = 0.0
    window: float | None = None


class Limiter(Protocol):
    """A per-key rate limiter; times are the server's seconds, never decreasing."""

    def hit(self, now: float) -> Verdict:
        """Count a request arriving at ``now``, or refuse it."""

    def state(self, now: float) -> RateState:
        """The budget as of ``now`` (what the answer's headers say)."""


class FixedWindow:
    """``limit`` requests per window of ``window`` seconds, aligned to the clock or to the first request."""

    __slots__ = ("_index", "_origin", "_used", "anchored", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0, *, anchored: bool = False) -> None:
        self.limit = limit
        self.window = window
        self.anchored = anchored
        self._origin: float | None = None if anchored else 0.0
        self._index = -1
        self._used = 0

    def _roll(self, now: float) -> float:
        if self._origin is None:
            self._origin = now
        index = math.floor((now - self._origin) / self.window)
        if index != self._index:
            self._index, self._used = index, 0
        return self._origin + (index + 1) * self.window - now

    def hit(self, now: float) -> Verdict:
        reset = self._roll(now)
        if self._used >= self.limit:
            return Verdict(allowed=False, retry_after=reset)
        self._used += 1
        return Verdict(allowed=True)

    def state(self, now: float) -> RateState:
        reset = self._roll(now)
        return RateState(self.limit, max(self.limit - self._used, 0), reset, self.window, self.limit)


class SlidingWindow:
    """At most ``limit`` requests in any ``window`` seconds (a sliding log)."""

    __slots__ = ("_log", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._log: collections.deque[float] = collections.deque()

    def _expire(self, now: float) -> None:
        while self._log and self._log[0] <= now - self.window:
            self._log.popleft()

    def _reset(self, now: float) -> float:
        return self._log[0] + self.window - now if self._log else 0.0

    def hit(self, now: float) -> Verdict:
        self._expire(now)
        if len(self._log) >= self.limit:
            return Verdict(allowed=False, retry_after=self._reset(now))
        self._log.append(now)
        return Verdict(allowed=True)

    def state(self, now: float) -> RateState:
        self._expire(now)
        return RateState(self.limit, self.limit - len(self._log), self._reset(now), self.window, self.limit)


class SlidingCounter:
    """The weighted two-window counter: the previous window's count fades out as the current one fills."""

    __slots__ = ("_current", "_index", "_previous", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._index = -1
        self._current = self._previous = 0

    def _estimate(self, now: float) -> tuple[float, float]:
        index = math.floor(now / self.window)
        if index != self._index:
            self._previous = self._current if index == self._index + 1 else 0
            self._index, self._current = index, 0
        elapsed = now / self.window - index
        return self._previous * (1 - elapsed) + self._current, (index + 1) * self.window - now

    def hit(self, now: float) -> Verdict:
        estimate, reset = self._estimate(now)
        if estimate >= self.limit - _EPSILON:
            # The estimate falls by one as the previous window fades out.
            wait = self.window / self._previous if self._previous else reset
            return Verdict(allowed=False, retry_after=min(max(wait, 0.001), reset))
        self._current += 1
        return Verdict(allowed=True)

    def state(self, now: float) -> RateState:
        estimate, reset = self._estimate(now)
        remaining = max(math.floor(self.limit - estimate + _EPSILON), 0)
        return RateState(self.limit, remaining, reset, self.window, self.limit)


class TokenBucket:
    """``limit / window`` requests per second with bursts of ``burst`` (GCRA)."""

    __slots__ = ("_interval", "_tat", "burst", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0, burst: int = 1) -> None:
        self.limit = limit
        self.window = window
        self.burst = burst
        self._interval = window / limit
        self._tat = -math.inf  # theoretical arrival time of the next conforming request

    def _allowed_at(self) -> float:
        return self._tat - (self.burst - 1) * self._interval

    def hit(self, now: float) -> Verdict:
        allowed_at = self._allowed_at()
        if now + _EPSILON < allowed_at:
            return Verdict(allowed=False, retry_after=allowed_at - now)
        self._tat = max(self._tat, now) + self._interval
        return Verdict(allowed=True)

    def state(self, now: float) -> RateState:
        slack = now - (self._tat - self.burst * self._interval)
        remaining = min(max(math.floor(slack / self._interval + _EPSILON), 0), self.burst)
        reset = max(self._allowed_at() - now, 0.0)
        return RateState(self.limit, remaining, reset, self.window, self.burst)


class Tenant:
    """Another client on the same key, wanting ``rate`` requests per second, evenly spread.

    Its requests are replayed, in time order, before each of ours. One the
    limiter refuses is kept and tried again at the neighbour's next tick, as a
    real neighbour would retry, so over time it gets its share.
    """

    __slots__ = ("_backlog", "_inner", "_interval", "_next", "rate", "spent")

    def __init__(self, inner: Limiter, rate: float, *, start: float = 0.0) -> None:
        self._inner = inner
        self.rate = rate
        self._interval = 1.0 / rate if rate > 0 else math.inf
        self._next = start
        self._backlog = 0
        self.spent = 0

    def _catch_up(self, now: float) -> None:
        while self._next <= now:
            self._backlog += 1
            while self._backlog and self._inner.hit(self._next).allowed:
                self._backlog -= 1
                self.spent += 1
            self._next += self._interval

    def hit(self, now: float) -> Verdict:
        self._catch_up(now)
        return self._inner.hit(now)

    def state(self, now: float) -> RateState:
        self._catch_up(now)
        return self._inner.state(now)

    def states(self, now: float) -> list[RateState]:
        self._catch_up(now)
        return states_of(self._inner, now)


def states_of(limiter: Limiter, now: float) -> list[RateState]:
    """Every window of ``limiter`` (one, unless it is :class:`AllOf` several), shortest first."""
    several = getattr(limiter, "states", None)
    return list(several(now)) if several is not None else [limiter.state(now)]


class AllOf:
    """Several windows at once (per second and per minute, say): a request passes only if every one allows it.

    ``state`` is the window nearest to running out; ``states`` all of them,
    shortest first. Only a request every window allows is counted.
    """

    __slots__ = ("_windows",)

    def __init__(self, windows: Sequence[Limiter]) -> None:
        self._windows = list(windows)

    def hit(self, now: float) -> Verdict:
        verdicts = [(w.state(now), w) for w in self._windows]
        refusing = [state for state, _ in verdicts if state.remaining <= 0]
        if refusing:
            last = max(refusing, key=lambda state: state.reset)
            return Verdict(allowed=False, retry_after=last.reset, window=last.window)
        for window in self._windows:
            window.hit(now)
        return Verdict(allowed=True)

    def states(self, now: float) -> list[RateState]:
        return sorted((w.state(now) for w in self._windows), key=lambda state: state.window)

    def state(self, now: float) -> RateState:
        return min(self.states(now), key=lambda state: (state.remaining / state.limit, -state.window))


def make_limiter(
    shape: LimiterShape,
    limit: int,
    window: float,
    *,
    burst: int = 1,
    tenant_share: float = 0.0,
    start: float,
    extra_windows: Sequence[tuple[int, float]] = (),
) -> Limiter:
    """Build one key's limiter: ``limit`` requests per ``window`` in the given shape.

    A token bucket refills at ``limit / window`` per second and holds ``burst``.
    ``tenant_share`` in [0, 1) gives a phantom neighbour that share of the rate,
    starting at ``start`` (the server's seconds). ``extra_windows`` adds fixed
    windows of ``(limit, seconds)`` that every request must also pass.
    """
    limiter: Limiter
    if shape in {"fixed", "anchored"}:
        limiter = FixedWindow(limit, window, anchored=shape == "anchored")
    elif shape == "sliding":
        limiter = SlidingWindow(limit, window)
    elif shape == "counter":
        limiter = SlidingCounter(limit, window)
    elif shape == "token":
        limiter = TokenBucket(limit, window, burst)
    else:
        raise ValidationError(f"unknown limiter shape {shape!r}; expected one of {', '.join(LIMITER_SHAPES)}")
    if extra_windows:
        limiter = AllOf([limiter, *(FixedWindow(count, seconds) for count, seconds in extra_windows)])
    if tenant_share > 0:
        limiter = Tenant(limiter, tenant_share * limit / window, start=start)
    return limiter


@attrs.frozen
class Spelling:
    """How one server family writes its rate-limit fields.

    Attributes:
        style: ``x`` for ``X-RateLimit-Limit/-Remaining/-Reset``; ``ietf`` for
            the structured ``RateLimit: "default";r=R;t=T`` with
            ``RateLimit-Policy: "default";q=Q;w=W``; ``ietf-fields`` for the
            separate ``RateLimit-Limit/-Remaining/-Reset`` with
            ``RateLimit-Policy: Q;w=W``; ``kong`` for Kong's
            ``X-RateLimit-Limit-Second``/``-Remaining-Minute`` per window, with
            ``RateLimit-Limit/-Remaining/-Reset`` of the nearest to running out;
            ``none`` for no fields.
        reset: ``delta`` (fractional seconds from now, to the millisecond),
            ``seconds`` (whole seconds from now, rounded up), ``epoch`` (the
            whole epoch second of the reset, rounded up), ``epoch-ms``,
            ``js-date`` (JavaScript's ``Date.toString()``, as lemlist sends it)
            or ``http-date``. The IETF structured field is always whole seconds.
        limit: ``quota`` sends the requests per window in ``Limit``;
            ``burst`` sends a token bucket's capacity there.
        retry_after: ``seconds`` (whole, rounded up, at least 1), ``date`` (an
            HTTP date), ``body`` (no header: the refusal's JSON body says
            ``{"error": {"retry_after": N}}``, as Smartlead's does) or ``none``.
        clock_offset: seconds the server's clock is ahead of the client's
            (negative: behind); shows in epoch resets and dates.
        status: what a refusal answers: 429, or 403 (Mailchimp's throttle) or
            503 (nginx's default).
        policy_in_body: the refusal's body names the refused policy, HubSpot's
            way (``"policyName": "SECONDLY"``).
    """

    style: HeaderStyle = "x"
    reset: ResetStyle = "delta"
    limit: LimitMeaning = "quota"
    retry_after: RetryAfterStyle = "seconds"
    clock_offset: float = 0.0
    status: int = 429
    policy_in_body: bool = False

    def headers(
        self, state: RateState, server_now: float, windows: Sequence[RateState] = ()
    ) -> dict[str, str]:
        """The rate-limit fields of an answer stamped at ``server_now`` (the server's epoch seconds).

        ``windows`` are all the key's windows when it has several (``kong`` spells each).
        """
        if self.style == "none":
            return {}
        if self.style == "kong":
            fields = {}
            for each in windows or (state,):
                period = _PERIODS.get(each.window, f"{each.window:g}s")
                fields[f"X-RateLimit-Limit-{period}"] = str(each.limit)
                fields[f"X-RateLimit-Remaining-{period}"] = str(each.remaining)
            return fields | {
                "RateLimit-Limit": str(state.limit),
                "RateLimit-Remaining": str(state.remaining),
                "RateLimit-Reset": str(math.ceil(state.reset - _EPSILON)),
            }
        limit = state.burst if self.limit == "burst" and state.burst else state.limit
        if self.style == "ietf":
            return {
                "RateLimit": f'"default";r={state.remaining};t={math.ceil(state.reset)}',
                "RateLimit-Policy": f'"default";q={limit};w={max(math.ceil(state.window), 1)}',
            }
        reset = self._reset(state.reset, server_now)
        if self.style == "ietf-fields":
            return {
                "RateLimit-Limit": str(limit),
                "RateLimit-Remaining": str(state.remaining),
                "RateLimit-Reset": reset,
                "RateLimit-Policy": f"{limit};w={max(math.ceil(state.window), 1)}",
            }
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(state.remaining),
            "X-RateLimit-Reset": reset,
        }

    def _reset(self, seconds: float, server_now: float) -> str:
        if self.reset == "seconds":
            return str(math.ceil(seconds - _EPSILON))
        if self.reset == "epoch":
            return str(math.ceil(server_now + seconds - _EPSILON))
        if self.reset == "epoch-ms":
            return str(math.ceil((server_now + seconds) * 1000))
        if self.reset in ("js-date", "http-date"):
            moment = math.ceil(server_now + seconds - _EPSILON)
            if self.reset == "http-date":
                return email.utils.formatdate(moment, usegmt=True)
            when = datetime.fromtimestamp(moment, timezone(timedelta(hours=1)))
            return when.strftime("%a %b %d %Y %H:%M:%S GMT+0100") + " (Central European Standard Time)"
        return f"{seconds:.3f}"

    def retry_after_value(self, wait: float, server_now: float) -> str:
        """``Retry-After`` for a refusal that lasts ``wait`` seconds."""
        if self.retry_after == "date":
            return email.utils.formatdate(math.ceil(server_now + wait), usegmt=True)
        return str(max(1, math.ceil(wait - _EPSILON)))

    def refusal(
        self, wait: float, server_now: float, window: float
    ) -> tuple[dict[str, str], dict[str, object]]:
        """What a refusal lasting ``wait`` of a ``window`` says besides its status: headers, body fields."""
        headers: dict[str, str] = {}
        body: dict[str, object] = {}
        if self.retry_after in ("seconds", "date"):
            headers["Retry-After"] = self.retry_after_value(wait, server_now)
        elif self.retry_after == "body":
            body["error"] = {
                "message": "Rate limit exceeded",
                "retry_after": max(1, math.ceil(wait - _EPSILON)),
            }
        if self.policy_in_body:
            body |= {"errorType": "RATE_LIMIT", "policyName": _POLICIES.get(window, "SECONDLY")}
        return headers, body

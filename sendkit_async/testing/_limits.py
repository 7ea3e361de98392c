"""The rate limiters a server may run, as plain state machines over a time you pass in.

The fake server uses them with its clock, and tests drive them on a virtual
clock without any HTTP. Each shape answers :meth:`Limiter.hit` (count a request
or refuse it) and :meth:`Limiter.state` (what the headers would say now).

* :class:`FixedWindow`: ``limit`` requests per ``window``; ``Remaining`` counts
  down and ``Reset`` is the end of the window.
* :class:`SlidingWindow`: at most ``limit`` requests in any ``window`` seconds
  (a sliding log); ``Reset`` is when the oldest counted request leaves it.
* :class:`TokenBucket`: the generic cell rate algorithm, ``rate`` per second
  with bursts of ``burst``; ``Remaining`` is the whole tokens left (0 after each
  request when ``burst`` is 1) and ``Reset`` is when the next request is allowed.

:class:`Tenant` wraps any of them with a phantom second client spending part of
the same key's budget, and :func:`rate_headers` renders a state in the
``X-RateLimit-*`` or IETF spelling.
"""

from __future__ import annotations

import collections
import math
from typing import Final, Literal, Protocol, TypeAlias

import attrs

__all__ = [
    "FixedWindow",
    "HeaderStyle",
    "Limiter",
    "LimiterShape",
    "RateState",
    "SlidingWindow",
    "Tenant",
    "TokenBucket",
    "Verdict",
    "make_limiter",
    "rate_headers",
]

HeaderStyle: TypeAlias = Literal["x", "ietf", "none"]
LimiterShape: TypeAlias = Literal["fixed", "sliding", "token"]
_EPSILON: Final = 1e-9


@attrs.frozen
class RateState:
    """What the rate-limit headers of an answer say.

    Attributes:
        limit: requests per window (the burst size for a token bucket).
        remaining: requests allowed right now.
        reset: seconds until the window ends (fixed), the oldest request leaves
            it (sliding), or the next request is allowed (token bucket).
        window: the policy's window in seconds (``1 / rate`` times ``limit`` for a bucket).
    """

    limit: int
    remaining: int
    reset: float
    window: float


@attrs.frozen
class Verdict:
    """The limiter's answer to one request: let through, or refused with a wait."""

    allowed: bool
    retry_after: float = 0.0


class Limiter(Protocol):
    """A per-key rate limiter; times are seconds on one monotonic clock, never decreasing."""

    def hit(self, now: float) -> Verdict:
        """Count a request arriving at ``now``, or refuse it."""

    def state(self, now: float) -> RateState:
        """The budget as of ``now`` (what the answer's headers say)."""


class FixedWindow:
    """``limit`` requests per aligned window of ``window`` seconds."""

    __slots__ = ("_index", "_used", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._index = -1
        self._used = 0

    def _roll(self, now: float) -> float:
        index = math.floor(now / self.window)
        if index != self._index:
            self._index, self._used = index, 0
        return (index + 1) * self.window - now

    def hit(self, now: float) -> Verdict:
        reset = self._roll(now)
        if self._used >= self.limit:
            return Verdict(allowed=False, retry_after=reset)
        self._used += 1
        return Verdict(allowed=True)

    def state(self, now: float) -> RateState:
        reset = self._roll(now)
        return RateState(self.limit, max(self.limit - self._used, 0), reset, self.window)


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
        return RateState(self.limit, self.limit - len(self._log), self._reset(now), self.window)


class TokenBucket:
    """``rate`` requests per second with bursts of ``burst`` (GCRA)."""

    __slots__ = ("_interval", "_tat", "burst", "rate")

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
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
        return RateState(self.burst, remaining, reset, self.burst * self._interval)


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


def make_limiter(
    shape: LimiterShape, limit: int, window: float, *, burst: int = 1, tenant_share: float = 0.0, start: float
) -> Limiter:
    """Build one key's limiter: ``limit`` requests per ``window`` in the given shape.

    A token bucket refills at ``limit / window`` per second and holds ``burst``.
    ``tenant_share`` in [0, 1) gives a phantom neighbour that share of the rate.
    """
    limiter: Limiter
    if shape == "fixed":
        limiter = FixedWindow(limit, window)
    elif shape == "sliding":
        limiter = SlidingWindow(limit, window)
    else:
        limiter = TokenBucket(limit / window, burst)
    if tenant_share > 0:
        limiter = Tenant(limiter, tenant_share * limit / window, start=start)
    return limiter


def rate_headers(state: RateState, style: HeaderStyle) -> dict[str, str]:
    """The answer's headers in one spelling.

    ``x`` sends ``X-RateLimit-Limit/-Remaining/-Reset`` (reset in seconds, to
    the millisecond). ``ietf`` sends the structured fields of the IETF draft:
    ``RateLimit: "default";r=REMAINING;t=RESET`` and
    ``RateLimit-Policy: "default";q=LIMIT;w=WINDOW`` (whole seconds, rounded up).
    """
    if style == "none":
        return {}
    if style == "ietf":
        return {
            "RateLimit": f'"default";r={state.remaining};t={math.ceil(state.reset)}',
            "RateLimit-Policy": f'"default";q={state.limit};w={max(math.ceil(state.window), 1)}',
        }
    return {
        "X-RateLimit-Limit": str(state.limit),
        "X-RateLimit-Remaining": str(state.remaining),
        "X-RateLimit-Reset": f"{state.reset:.3f}",
    }

"""Request pacing for bulk jobs.

A token bucket enforces the caller's cap; a limiter shared by every worker
of a client paces itself from the server's rate-limit headers.

Both hand out *reservations*: each caller is given its own send time and
sleeps until then, so a crowd of waiting workers leaves one by one at the
paced rate instead of stampeding when a pause ends.
"""

from __future__ import annotations

import bisect
import math

import anyio.lowlevel

from sendkit_async._clock import Clock
from sendkit_async._session import Attempt

__all__ = ["RateLimiter", "TokenBucket"]

_RATE_LIMITED = 429
# Assumed pause after a 429 that names no wait and carries no reset.
_DEFAULT_PAUSE = 1.0
# A send this close after a window's end still lands in the next window.
_GUARD = 0.002
# How many past send times to keep for the in-flight correction.
_HISTORY = 4096


async def _sleep_until(clock: Clock, slot: float) -> None:
    delay = slot - clock.monotonic()
    if delay > 0:
        await clock.sleep(delay)
    else:
        await anyio.lowlevel.checkpoint()  # still a cancellation point


class TokenBucket:
    """At most ``rate`` acquisitions per second, with bursts up to ``capacity``.

    Example:
        >>> bucket = TokenBucket(20, clock=SystemClock())  # doctest: +SKIP
        >>> await bucket.acquire()  # doctest: +SKIP

    Raises:
        ValueError: a rate or capacity that is not positive.
    """

    __slots__ = ("_clock", "_interval", "_tat", "_tolerance")

    def __init__(self, rate: float, *, clock: Clock, capacity: int = 1) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        self._clock = clock
        self._interval = 1.0 / rate
        self._tolerance = (capacity - 1) * self._interval
        self._tat = -math.inf  # the generic cell rate algorithm's "theoretical arrival time"

    async def acquire(self) -> None:
        """Wait for a token."""
        now = self._clock.monotonic()
        tat = max(self._tat, now)
        slot = max(now, tat - self._tolerance)
        self._tat = tat + self._interval
        await _sleep_until(self._clock, slot)


class RateLimiter:
    """Paces one client's requests from the server's ``X-RateLimit-*`` headers.

    Each answer's ``Remaining`` and ``Reset`` give the budget left in the
    current window; the limiter spreads that budget evenly over the rest of
    the window, and once the window is spent, waits for the reset. Requests
    sent after the observed one may not be counted in its ``Remaining`` yet,
    so they are subtracted (a conservative reading). Past a reset it assumes
    a full window of ``Limit`` requests. A 429 sets one pause shared by every
    caller, until its ``Retry-After`` (or the reset).

    Without headers it does not pace at all. Make one per client and event
    loop; it keeps no global state.
    """

    __slots__ = (
        "_budget",
        "_clock",
        "_limit",
        "_next",
        "_pause_until",
        "_sends",
        "_window_end",
        "_window_len",
    )

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._next = -math.inf
        self._pause_until = -math.inf
        self._window_end: float | None = None
        self._window_len = 0.0
        self._limit: int | None = None
        self._budget = math.inf
        self._sends: list[float] = []

    @property
    def paused_until(self) -> float:
        """End of the shared pause on the clock (``-inf`` when none)."""
        return self._pause_until

    def _roll(self, slot: float) -> None:
        """Move to the window that contains ``slot``, assumed unspent."""
        if self._window_end is None or self._limit is None or self._window_len <= 0:
            self._window_end, self._budget = None, math.inf
            return
        skipped = math.floor((slot - self._window_end) / self._window_len) + 1
        self._window_end += skipped * self._window_len
        self._budget = float(self._limit)

    async def acquire(self) -> None:
        """Wait for this caller's turn."""
        now = self._clock.monotonic()
        slot = max(now, self._next, self._pause_until)
        spacing = 0.0
        if self._window_end is not None:
            if slot >= self._window_end:
                self._roll(slot)
            if self._window_end is not None and self._budget < 1:
                slot = self._window_end + _GUARD
                self._roll(slot)
            if self._window_end is not None:
                spacing = max(self._window_end - slot, 0.0) / max(self._budget, 1.0)
                self._budget -= 1
        self._next = slot + spacing
        self._sends.append(slot)
        if len(self._sends) > 2 * _HISTORY:
            del self._sends[:_HISTORY]
        await _sleep_until(self._clock, slot)

    def observe(self, attempt: Attempt) -> None:
        """Learn from an attempt's answer (call it for every attempt)."""
        now = self._clock.monotonic()
        rate = attempt.rate_limit
        if attempt.status == _RATE_LIMITED:
            wait = attempt.retry_after
            if wait is None and rate is not None:
                wait = rate.reset_after
            self._pause_until = max(self._pause_until, now + (_DEFAULT_PAUSE if wait is None else wait))
            self._budget = 0.0
        if rate is None or rate.remaining is None or rate.reset_after is None:
            return
        reset_at = rate.observed_at + rate.reset_after
        self._window_len = max(self._window_len, rate.reset_after)
        if rate.limit is not None:
            self._limit = rate.limit
        unseen = len(self._sends) - bisect.bisect_right(self._sends, attempt.sent_at)
        budget = float(max(rate.remaining - unseen, 0))
        tolerance = self._window_len / 2
        if self._window_end is None or reset_at > self._window_end + tolerance:
            self._window_end, self._budget = reset_at, budget  # first sight, or a new window
        elif reset_at >= self._window_end - tolerance:
            # Same window: the answer's reset beats our extrapolation from the
            # window length, which early on is an underestimate.
            self._window_end = reset_at
            self._budget = min(self._budget, budget)
        # else: a late answer from a window already over; nothing to learn

"""Retry decisions as pure functions of plain values; the session's loop only calls them."""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Callable, Mapping
from typing import Final

from ._config import MAX_SERVER_WAIT, RetryPolicy
from ._rate import RateLimit

__all__ = [
    "backoff",
    "next_delay",
    "parse_rate_limit",
    "parse_retry_after",
    "should_retry",
]

RETRYABLE_STATUSES: Final = frozenset({408, 409, 429})
RATE_LIMITED: Final = 429
# X-RateLimit-Reset is either seconds until the reset or a Unix timestamp;
# no window is anywhere near 30 years long, so anything above this is a timestamp.
_EPOCH_THRESHOLD: Final = 1e9
# ... and above this, epoch milliseconds.
_EPOCH_MS_THRESHOLD: Final = 1e11
_LEADING_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)")
# More requests than this in a limit or a remaining count is not a rate anyone runs.
_MOST_REQUESTS: Final = 1e9


def should_retry(status: int | None) -> bool:
    """Whether a failed attempt is worth another try.

    ``None`` stands for "no answer" (dropped connection, timeout): retried,
    because the import and inbox calls are idempotent on the server (existing
    entries are skipped, read conversations stay read).
    """
    return status is None or status in RETRYABLE_STATUSES or status >= 500  # noqa: PLR2004


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    match = _LEADING_NUMBER.match(value)
    if match is None:
        return None
    number = float(match.group(1))
    return number if math.isfinite(number) else None


def _believable(seconds: float | None) -> float | None:
    """A wait the server states, or ``None`` when it is past ``MAX_SERVER_WAIT`` (or not a number)."""
    if seconds is None or not math.isfinite(seconds) or seconds > MAX_SERVER_WAIT:
        return None
    return max(seconds, 0.0)


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After``, or ``None``.

    ``Retry-After`` may be seconds or an HTTP date (compared with ``now``,
    seconds since the epoch). Negative waits become zero; a wait past
    ``MAX_SERVER_WAIT`` (an hour) is taken as unknown.
    """
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return _believable(millis / 1000.0)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(raw).timestamp() - now
        except (TypeError, ValueError, OverflowError):
            return None
    return _believable(seconds)


def _field_text(raw: str | None, name: str) -> str | None:
    """One parameter of a structured IETF field as sent (``"3"`` for ``r`` in ``"default";r=3;t=1``)."""
    if raw is None:
        return None
    match = re.search(rf"(?:^|[;,\s]){name}=(-?\d+(?:\.\d+)?)", raw)
    return None if match is None else match.group(1)


def _field(raw: str | None, name: str) -> float | None:
    """One parameter of a structured IETF field, as a number."""
    text = _field_text(raw, name)
    return None if text is None else float(text)


def parse_rate_limit(headers: Mapping[str, str], *, observed_at: float, now: float) -> RateLimit | None:
    """Read the answer's rate-limit fields, or ``None`` if it has none.

    Understands ``X-RateLimit-Limit/-Remaining/-Reset``, the IETF draft's
    separate ``RateLimit-Limit/-Remaining/-Reset``, its combined
    ``RateLimit: limit=10, remaining=3, reset=1``, and its structured
    ``RateLimit: "default";r=3;t=1`` with ``RateLimit-Policy: "default";q=10;w=1``.
    A reset above 1e9 is an epoch timestamp (above 1e11, in milliseconds),
    anything else seconds from now.

    Args:
        headers: response headers (case-insensitive mapping).
        observed_at: the client's monotonic time of the answer.
        now: seconds since the epoch, to turn a timestamp reset into a delay.
    """

    def first(name: str, structured: str) -> tuple[float | None, str | None]:
        """The field's value and its text as sent (to tell whole seconds from finer)."""
        for prefix in ("x-ratelimit-", "ratelimit-"):
            raw = headers.get(prefix + name)
            value = _number(raw)
            if value is not None:
                return value, raw
        combined = headers.get("ratelimit")
        text = _field_text(combined, structured) or _field_text(combined, name)
        return (None, None) if text is None else (float(text), text)

    limit, _ = first("limit", "q")
    remaining, _ = first("remaining", "r")
    reset, raw_reset = first("reset", "t")
    policy = headers.get("ratelimit-policy")
    if limit is None:
        limit = _field(policy, "q") if policy is None or "q=" in policy else _number(policy)
    window = _field(policy, "w")
    # Believed only within bounds: no rate is 0 (or 10**30) requests, and no window or reset is
    # past MAX_SERVER_WAIT; what is out of bounds is taken as not sent.
    limit = limit if limit is not None and 1 <= limit <= _MOST_REQUESTS else None
    remaining = remaining if remaining is not None and remaining <= _MOST_REQUESTS else None
    window = window if window is not None and 0 < window <= MAX_SERVER_WAIT else None
    reset, resolution, epoch = _reset_of(reset, raw_reset, now)
    if limit is None and remaining is None and reset is None:
        return None
    return RateLimit(
        limit=None if limit is None else int(limit),
        remaining=None if remaining is None else max(int(remaining), 0),
        reset_after=None if reset is None else max(reset, 0.0),
        observed_at=observed_at,
        window=window,
        reset_resolution=resolution,
        reset_epoch=epoch,
    )


def _reset_of(reset: float | None, raw: str | None, now: float) -> tuple[float | None, float, float | None]:
    """A reset field as (seconds from now, its resolution, the epoch it named), or unknown if past bounds.

    Above 1e9 it is an epoch timestamp (above 1e11, in milliseconds); a
    whole number is resolved to the second (or the millisecond).
    """
    if reset is None:
        return None, 0.0, None
    resolution = 1.0 if raw is not None and re.fullmatch(r"\s*-?\d+\s*", raw) else 0.0
    epoch: float | None = None
    if reset > _EPOCH_MS_THRESHOLD:
        reset /= 1000.0
        resolution /= 1000.0
    if reset > _EPOCH_THRESHOLD:
        epoch = reset
        reset -= now
    if _believable(reset) is None:
        return None, 0.0, None
    return reset, resolution, epoch


def backoff(attempt: int, policy: RetryPolicy, rand: Callable[[], float]) -> float:
    """Full-jitter exponential backoff: uniform in ``[0, min(cap, base * 2**attempt))``."""
    ceiling = min(policy.backoff_cap, policy.backoff_base * 2.0**attempt)
    return rand() * ceiling


def next_delay(
    *,
    status: int | None,
    retries: int,
    rate_limit_retries: int,
    retry_after: float | None,
    policy: RetryPolicy,
    rand: Callable[[], float],
    refused_for: float = 0.0,
    time_left: float | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` to give up.

    Args:
        status: the failed attempt's status, ``None`` for no answer.
        retries: transient retries already spent.
        rate_limit_retries: 429 retries already spent (a separate budget).
        retry_after: the server's requested wait, if any; honoured when it is
            within ``policy.max_retry_wait``, otherwise the call gives up
            rather than hang.
        policy: the budgets and backoff shape.
        rand: a source of floats in ``[0, 1)`` for the jitter.
        refused_for: seconds the call has met nothing but 429s (see
            ``policy.max_refused_for``).
        time_left: what is left of the call's own time limit (``Timeout.call``);
            a retry whose wait would outlast it is not made.
    """
    if not should_retry(status) or (time_left is not None and time_left <= 0):
        return None
    if status == RATE_LIMITED:
        refused_long = policy.max_refused_for is not None and refused_for >= policy.max_refused_for
        if rate_limit_retries >= policy.rate_limit_retries or refused_long:
            return None
        spent = rate_limit_retries
    else:
        if retries >= policy.max_retries:
            return None
        spent = retries
    delay = backoff(spent, policy, rand) if retry_after is None else retry_after
    if retry_after is not None and retry_after > policy.max_retry_wait:
        return None
    return None if time_left is not None and delay >= time_left else delay

"""Retry decisions as pure functions of plain values; the session's loop only calls them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ._config import RetryPolicy

__all__ = ["backoff", "next_delay", "should_retry"]

RETRYABLE_STATUSES: Final = frozenset({408, 409, 429})
RATE_LIMITED: Final = 429


def should_retry(status: int | None) -> bool:
    """Whether a failed attempt is worth another try.

    ``None`` stands for "no answer" (dropped connection, timeout): retried,
    because the import and inbox calls are idempotent on the server (existing
    entries are skipped, read conversations stay read).
    """
    return status is None or status in RETRYABLE_STATUSES or status >= 500  # noqa: PLR2004


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
    refused: bool = False,
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` to give up.

    Args:
        status: the failed attempt's status, ``None`` for no answer.
        retries: transient retries already spent.
        rate_limit_retries: retries after refusals already spent (a separate budget).
        retry_after: the server's requested wait, if any; honoured when it is
            within ``policy.max_retry_wait``, otherwise the call gives up
            rather than hang.
        policy: the budgets and backoff shape.
        rand: a source of floats in ``[0, 1)`` for the jitter.
        refused_for: seconds the call has met nothing but refusals (see
            ``policy.max_refused_for``).
        time_left: what is left of the call's own time limit (``Timeout.call``);
            a retry whose wait would outlast it is not made.
        refused: the answer was a rate limiter's refusal (a 429, or a 503 or
            403 that behaves like one: see :mod:`._throttle`), retried as a 429.
    """
    refused = refused or status == RATE_LIMITED
    if not (refused or should_retry(status)) or (time_left is not None and time_left <= 0):
        return None
    if refused:
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

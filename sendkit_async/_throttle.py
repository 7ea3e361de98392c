"""Whether an answer is a rate limiter's refusal: every 429, and a 503, 403 or 420 that behaves like one.

Not every limiter answers 429. nginx's ``limit_req`` refuses with 503 unless
told otherwise (a bare HTML page, no fields); Mailchimp throttles with a 403;
Twitter's old API with 420. A refusal is something to wait for and learn the
pace from, never a reason to give a batch up; a server fault is retried a few
times and then given up; a real permission error is final. This module tells
them apart from what the answer shows:

* **Said so.** A ``Retry-After`` (or ``retry-after-ms``), rate-limit fields
  with nothing remaining, a wait or a policy named in the body (Smartlead's
  ``error.retry_after``, HubSpot's ``policyName``), or a body that names a
  rate limit ("rate limit", "too many requests", "throttled", "slow down",
  "quota"): a refusal, whatever the status of the three.
* **A 503 that came back at once.** An edge refusing answers in well under
  the time the API takes to serve a request (nginx: a millisecond against a
  batch's 150 ms), so a 503 faster than half the fastest success of the same
  client, while successes keep coming, is a limiter's, not a server fault
  (those come from the server, after its work).
* **A bare 403 of a key that works.** A 403 answered as fast, on a client
  whose requests succeeded within the last minute, is a throttle; a key that
  really lacks access never succeeds on retry, so at most five of these in a
  row count as refusals, and the call then raises :class:`PermissionDeniedError`.

The SDK decides this once, in the session (:meth:`Session.request`); the
budget learns from such an answer as from a 429, the retries spend the 429
allowance (``max_rate_limit_retries``, ``max_refused_for``), and the adaptive
in-flight limit does not take it for an overloaded server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

from ._fields import believable
from ._rate import RateLimit

__all__ = ["GUESSED_REFUSALS", "MAYBE_REFUSALS", "Throttles", "policy_window", "retry_after_in_body"]

RATE_LIMITED: Final = 429
# Statuses some limiters refuse with besides 429.
MAYBE_REFUSALS: Final = frozenset({403, 420, 503})
_FORBIDDEN: Final = 403
_UNAVAILABLE: Final = 503
_WORDS: Final = re.compile(
    r"rate[\s_-]?limit|too many requests|throttl|slow down|quota|limit exceeded|exceeded the limit|"
    r"requests per (?:second|minute|hour|day)",
    re.IGNORECASE,
)
# A 503 or a bare 403 faster than this share of the fastest success is an edge's answer.
_FAST: Final = 0.5
# Successes this recent show the key works (a bare 403 is then a throttle).
_RECENT: Final = 60.0
# At most this many refusals guessed from a bare 503 or 403 (nothing said, only its speed) count
# for one call: a server failing fast for its own reasons is then a failure again.
GUESSED_REFUSALS: Final = 5
# A wait the body names, by key (seconds unless the key says milliseconds).
_BODY_WAITS: Final = {
    "retry_after": 1.0,
    "retryAfter": 1.0,
    "retry_after_seconds": 1.0,
    "retry_after_ms": 0.001,
    "retryAfterMs": 0.001,
}
# Policies named in a refusal's body (HubSpot's ``policyName``), as window lengths.
_POLICIES: Final = {
    "SECONDLY": 1.0,
    "TEN_SECONDLY": 10.0,
    "MINUTELY": 60.0,
    "HOURLY": 3600.0,
    "DAILY": 86400.0,
}


def _containers(decoded: Any) -> list[Mapping[str, Any]]:
    """The body and its ``error`` object, where refusals put their fields."""
    if not isinstance(decoded, Mapping):
        return []
    error = decoded.get("error")
    return [decoded, error] if isinstance(error, Mapping) else [decoded]


def retry_after_in_body(decoded: Any) -> float | None:
    """The wait a refusal's JSON body names (``retry_after`` at the top or under ``error``), in seconds.

    ``None`` when it names none, or one that is not a believable number of
    seconds (negative becomes 0; past an hour, unknown).
    """
    for container in _containers(decoded):
        for key, unit in _BODY_WAITS.items():
            value = container.get(key)
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    continue
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return believable(value * unit)
    return None


def policy_window(decoded: Any) -> float | None:
    """The window a refusal's body names (HubSpot's ``"policyName": "SECONDLY"``), in seconds."""
    for container in _containers(decoded):
        name = container.get("policyName")
        if isinstance(name, str) and name.upper() in _POLICIES:
            return _POLICIES[name.upper()]
    return None


def said_so(headers: Mapping[str, str], text: str, decoded: Any, rate: RateLimit | None) -> bool:
    """Whether an answer says, in its fields or its body, that a limiter refused it."""
    if "retry-after" in headers or "retry-after-ms" in headers:
        return True
    if rate is not None and rate.remaining == 0:
        return True
    if retry_after_in_body(decoded) is not None or policy_window(decoded) is not None:
        return True
    return _WORDS.search(text[:2000]) is not None


class Throttles:
    """One client's memory for telling a limiter's 503 or 403 from the server's: its successes.

    Times are the client's monotonic seconds.
    """

    __slots__ = ("_fastest", "_last_success")

    def __init__(self) -> None:
        self._fastest = math.inf
        self._last_success = -math.inf

    def success(self, latency: float, now: float) -> None:
        """Note a 2xx that took ``latency`` seconds, answered at ``now``."""
        self._fastest = min(self._fastest, latency)
        self._last_success = now

    def refused(
        self,
        status: int,
        *,
        said: bool,
        latency: float,
        now: float,
        guessed: int = 0,
    ) -> bool:
        """Whether an answer of ``status`` is a limiter's refusal.

        Args:
            status: the answer's status.
            said: what :func:`said_so` found in the answer.
            latency: how long it took.
            now: when it came (the clock :meth:`success` is told).
            guessed: 503s and 403s this call already took for refusals.
        """
        if status == RATE_LIMITED:
            return True
        if status not in MAYBE_REFUSALS:
            return False
        if said or status == 420:  # noqa: PLR2004 - "Enhance Your Calm" means nothing else
            return True
        fast = latency <= _FAST * self._fastest and now - self._last_success <= _RECENT
        return fast and guessed < GUESSED_REFUSALS

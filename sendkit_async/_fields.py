"""Reading what an answer says about the rate limit: its fields, its ``Retry-After``, its dates.

Pure functions of headers and plain values. The conventions understood:

* ``X-RateLimit-Limit/-Remaining/-Reset``, the IETF draft's separate
  ``RateLimit-Limit/-Remaining/-Reset``, its combined ``RateLimit: limit=10,
  remaining=3, reset=1``, and its structured ``RateLimit: "default";r=3;t=1``
  with ``RateLimit-Policy: "default";q=10;w=1`` (several items: several windows).
* Kong's ``X-RateLimit-Limit-Second``/``-Remaining-Minute`` (one pair per
  window, Second to Year), with ``RateLimit-Reset`` for the window nearest to
  running out. Kong's windows are aligned to the epoch, so a window whose
  reset is not sent resets at the next multiple of its length.
* A reset in seconds from now, an epoch timestamp (above 1e9; above 1e11 in
  milliseconds), an HTTP date, a JavaScript ``Date.toString()`` (lemlist's
  ``"Tue Feb 16 2021 09:02:42 GMT+0100 (Central European Standard Time)"``)
  or an ISO 8601 moment. Dates are whole seconds.
* ``Retry-After`` in seconds or as an HTTP date, and ``retry-after-ms``.

Several windows at once: the answer's fields describe the shortest (it sets
the pace), and a longer one with nothing left blocks every request until it
resets (:attr:`RateLimit.blocked_after`).

What is past belief is taken as not sent: no rate is 0 (or 10**30) requests,
and no wait, window or reset is longer than ``MAX_SERVER_WAIT`` (an hour).
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Final

from ._config import MAX_SERVER_WAIT
from ._rate import RateLimit, Window

__all__ = ["believable", "parse_date", "parse_rate_limit", "parse_retry_after"]

# X-RateLimit-Reset is either seconds until the reset or a Unix timestamp;
# no window is anywhere near 30 years long, so anything above this is a timestamp.
_EPOCH_THRESHOLD: Final = 1e9
# ... and above this, epoch milliseconds.
_EPOCH_MS_THRESHOLD: Final = 1e11
_LEADING_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)")
# More requests than this in a limit or a remaining count is not a rate anyone runs.
_MOST_REQUESTS: Final = 1e9
# Kong's period names, as window lengths.
_PERIODS: Final = {
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "month": 30 * 86400.0,
    "year": 365 * 86400.0,
}
_KONG: Final = re.compile(r"x-ratelimit-(limit|remaining)-(second|minute|hour|day|month|year)", re.IGNORECASE)
_MONTHS: Final = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# JavaScript's Date.toString(): "Tue Feb 16 2021 09:02:42 GMT+0100 (Central European Standard Time)".
_JS_DATE: Final = re.compile(
    r"\s*(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})"
    r"\s*(?:GMT|UTC|Z)?\s*(?:([+-])(\d{2}):?(\d{2}))?"
)
_DATE: Final = "<a date>"  # marks a reset that came as a date (an epoch moment, whatever its size)
_ITEM: Final = re.compile(r'\s*(?:"([^"]*)"|([A-Za-z0-9_.-]+))?((?:\s*;\s*[A-Za-z0-9_-]+\s*=\s*[^;,]*)*)')


def believable(seconds: float | None) -> float | None:
    """A wait the server states, or ``None`` when it is past ``MAX_SERVER_WAIT`` (or not a number)."""
    if seconds is None or not math.isfinite(seconds) or seconds > MAX_SERVER_WAIT:
        return None
    return max(seconds, 0.0)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    match = _LEADING_NUMBER.match(value)
    if match is None:
        return None
    number = float(match.group(1))
    return number if math.isfinite(number) else None


def parse_date(text: str) -> float | None:
    """A date as epoch seconds: JavaScript's ``Date.toString()``, an HTTP date, or ISO 8601; else ``None``.

    JavaScript's form is tried first: the e-mail date parser reads its
    ``GMT+0100`` as plain GMT, an hour off.
    """
    match = _JS_DATE.match(text)
    if match is not None and match.group(1).lower() in _MONTHS:
        month, day, year, hour, minute, second, sign, off_h, off_m = match.groups()
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0)) * (-1 if sign == "-" else 1)
        try:
            moment = datetime(
                int(year),
                _MONTHS.index(month.lower()) + 1,
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=timezone(offset),
            )
        except ValueError:
            return None
        return moment.timestamp()
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After``, or ``None``.

    ``Retry-After`` may be seconds or an HTTP date (compared with ``now``,
    seconds since the epoch). Negative waits become zero; a wait past
    ``MAX_SERVER_WAIT`` (an hour) is taken as unknown.
    """
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return believable(millis / 1000.0)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        moment = parse_date(raw)
        if moment is None:
            return None
        seconds = moment - now
    return believable(seconds)


def _items(raw: str | None) -> list[tuple[str, dict[str, str]]]:
    """A structured IETF list as (name, parameters) items: ``"a";q=10;w=1, "b";q=300;w=60``."""
    if not raw:
        return []
    found = []
    for part in raw.split(","):
        match = _ITEM.match(part)
        if match is None:
            continue
        name = match.group(1) or match.group(2) or ""
        pairs = (p.partition("=") for p in match.group(3).split(";") if "=" in p)
        params = {key.strip().lower(): value.strip().strip('"') for key, _, value in pairs}
        found.append((name, params))
    return found


def _count(value: float | None) -> float | None:
    return value if value is not None and 0 <= value <= _MOST_REQUESTS else None


def _several(headers: Mapping[str, str], now: float) -> list[Window]:
    """Every window the answer names, when it names more than one, shortest first."""
    windows: list[Window] = []
    kong: dict[str, dict[str, float]] = {}
    for name, value in headers.items():
        match = _KONG.fullmatch(name)
        number = _count(_number(value))
        if match is not None and number is not None:
            kong.setdefault(match.group(2).lower(), {})[match.group(1).lower()] = number
    if kong:
        general_limit = _number(headers.get("ratelimit-limit"))
        general_reset = _number(headers.get("ratelimit-reset"))
        for period, fields in kong.items():
            if "limit" not in fields or "remaining" not in fields or fields["limit"] < 1:
                continue
            seconds = _PERIODS[period]
            reset = general_reset if general_limit == fields["limit"] else None
            if reset is None:
                reset = math.ceil(now / seconds) * seconds - now  # aligned to the epoch, as Kong's are
            windows.append(Window(int(fields["limit"]), int(fields["remaining"]), seconds, believable(reset)))
    else:
        policies = {name: params for name, params in _items(headers.get("ratelimit-policy")) if "q" in params}
        for name, params in _items(headers.get("ratelimit")):
            policy = policies.get(name, {})
            limit, remaining = _count(_number(policy.get("q"))), _count(_number(params.get("r")))
            length, after = _number(policy.get("w")), _number(params.get("t"))
            if limit and remaining is not None and length and length > 0:
                windows.append(Window(int(limit), int(remaining), length, believable(after)))
    return sorted(windows, key=lambda window: window.seconds) if len(windows) > 1 else []


def parse_rate_limit(headers: Mapping[str, str], *, observed_at: float, now: float) -> RateLimit | None:
    """Read the answer's rate-limit fields (see the module docstring), or ``None`` if it has none.

    Args:
        headers: response headers (case-insensitive mapping).
        observed_at: the client's monotonic time of the answer.
        now: seconds since the epoch, to turn a timestamp or a date into a delay.
    """
    windows = _several(headers, now)
    if windows:
        return _of_windows(windows, headers, observed_at=observed_at)

    def first(name: str, structured: str) -> tuple[float | None, str | None]:
        """The field's value and its text as sent (to tell whole seconds from finer)."""
        for prefix in ("x-ratelimit-", "ratelimit-"):
            raw = headers.get(prefix + name)
            value = _number(raw)
            if value is None and raw is not None and name == "reset":
                value = parse_date(raw)
                raw = None if value is None else _DATE  # a date is whole seconds, of the epoch
            if value is not None:
                return value, raw
        combined = headers.get("ratelimit")
        text = _field_text(combined, structured) or _field_text(combined, name)
        return (None, None) if text is None else (float(text), text)

    limit: float | None
    limit, _ = first("limit", "q")
    remaining, _ = first("remaining", "r")
    reset, raw_reset = first("reset", "t")
    policy = headers.get("ratelimit-policy")
    if limit is None:
        limit = _field(policy, "q") if policy is None or "q=" in policy else _number(policy)
    window = _field(policy, "w")
    limit = limit if limit is not None and 1 <= limit <= _MOST_REQUESTS else None
    remaining = _count(remaining) if remaining is None or remaining >= 0 else 0.0
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


def _of_windows(windows: list[Window], headers: Mapping[str, str], *, observed_at: float) -> RateLimit:
    """Several windows: the shortest paces; a longer one with nothing left blocks until it resets."""
    shortest = windows[0]
    blocked = [w.reset_after for w in windows[1:] if w.remaining <= 0 and w.reset_after is not None]
    resolution = 1.0 if re.fullmatch(r"\s*\d+\s*", headers.get("ratelimit-reset", "0")) else 0.0
    return RateLimit(
        limit=shortest.limit,
        remaining=max(shortest.remaining, 0),
        reset_after=shortest.reset_after,
        observed_at=observed_at,
        window=shortest.seconds,
        reset_resolution=resolution,
        windows=tuple(windows),
        blocked_after=max(blocked) if blocked else None,
    )


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


def _reset_of(reset: float | None, raw: str | None, now: float) -> tuple[float | None, float, float | None]:
    """A reset field as (seconds from now, its resolution, the epoch it named), or unknown if past bounds.

    Above 1e9 it is an epoch timestamp (above 1e11, in milliseconds); a
    whole number is resolved to the second (or the millisecond).
    """
    if reset is None:
        return None, 0.0, None
    if raw is _DATE:
        return believable(reset - now), 1.0, reset if believable(reset - now) is not None else None
    resolution = 1.0 if raw is not None and re.fullmatch(r"\s*-?\d+\s*", raw) else 0.0
    epoch: float | None = None
    if reset > _EPOCH_MS_THRESHOLD:
        reset /= 1000.0
        resolution /= 1000.0
    if reset > _EPOCH_THRESHOLD:
        epoch = reset
        reset -= now
    if believable(reset) is None:
        return None, 0.0, None
    return reset, resolution, epoch

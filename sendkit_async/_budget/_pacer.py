"""When the next request may leave: a pure state machine over times passed in.

The pacer learns one number, the *interval* between sends that the server
sustains, and keeps one fact, the server's latest *statement* ("``remaining``
more until ``reset_at``"). Both come from every answer, whatever limiter the
server runs:

* Each answer with rate-limit fields gives a sample of the interval:
  ``(reset_at - sent_at) / (remaining + 1)``, the time the server grants per
  request counted from when this request arrived. Under a fixed or sliding
  window paced evenly that is ``window / limit``; under a token bucket (where
  ``Remaining`` stays near 0 and ``Reset`` is when the next request is
  allowed) it is the refill interval; when another client spends the same key,
  ``Remaining`` falls faster and the samples grow to this client's share. The
  median of recent samples is used, so no single answer is taken blindly, and
  never below ``longest reset seen / limit``, the sustained rate of a window
  (a sample taken late in a window with budget left over would say "hurry",
  which a sliding window punishes; the longest reset is kept while the limit
  stays the same). An IETF ``RateLimit-Policy`` (``q``
  requests per ``w`` seconds) names the interval outright.
* The statement is a hard limit: once this client's sends since the stated
  request use up ``remaining``, the next one waits for ``reset_at``, and each
  one after it for an interval after the later of that slot and its
  predecessor's actual departure (as a token bucket counts them). A 429 for a
  send the statement allowed shows that sends reach the server later than they
  leave here; that lag is learned (from how early the refused request was;
  decaying with success). A server that rounds its
  reset to whole seconds cannot say when within that second the budget
  returns, so its statement is not enforced; the interval alone paces.
* A server that sends no rate-limit fields is learned from its 429s: until the
  first one, at most two requests are in flight (one more per quiet second);
  the first 429 turns the requests admitted since the start, over the time to
  the window's end implied by ``Retry-After``, into a rate. That rate climbs
  10% a quiet second until a 429 arrives while paced, which marks the ceiling:
  the pace drops 7% under it, creeps back to 3% under it, and probes above it
  only after 30 quiet seconds. So a job sees a handful of 429s, not one a window.
* A 429 pauses every caller until its ``Retry-After`` (or a precise reset just
  before it). A pause longer than ``max_pause`` is not honoured for everyone:
  the call that received it raises, and others wait one probing second.

Until the first answer arrives, one request at a time goes out, so a job never
opens with a burst the server would refuse.
"""

from __future__ import annotations

import bisect
import collections
import math
import statistics
from typing import Final

from ._protocol import Shape

__all__ = ["Pacer"]

_RATE_LIMITED: Final = 429
# A send this long after a stated reset lands after it, despite clock jitter.
_GUARD: Final = 0.003
_DEFAULT_PAUSE: Final = 1.0
_PROBE_PAUSE: Final = 1.0
_SAMPLES: Final = 9
_HISTORY: Final = 4096
_BLIND_START_CAP: Final = 2
_QUIET: Final = 1.0
_BACKOFF: Final = 1.1
# After a 429 that came with a precise statement the lag explains it; the
# interval only needs a nudge.
_NUDGE: Final = 1.0
# Blind pacing: climb 10% a quiet second until a paced 429 shows the ceiling,
# then settle 7% under it and creep toward 3% under; probe above it only after
# a long quiet spell.
_CLIMB: Final = 1.1
_SETTLE: Final = 0.93
_CEILING: Final = 0.97
_CREEP: Final = 1.01
_LONG_QUIET: Final = 30.0
_MAX_PENALTY: Final = 4.0
# Sends go this share of an interval later than the learned rate allows, so
# that jitter on the way does not land one before the server's next slot.
_MARGIN: Final = 0.015
_PENALTY_DECAY: Final = 0.995
# A 429 for a send the statement allowed means our sends reach the server's
# limiter later than we think: allow them that much more, at least this, at
# most a fifth of an interval, forgetting 1% of it with every success.
_MIN_LAG: Final = 0.002
_MAX_LAG_SHARE: Final = 0.2
_LAG_DECAY: Final = 0.99
# Weight kept by the foreign-spend estimate at each new pair of statements.
_FOREIGN_DECAY: Final = 0.9


def _whole_seconds(value: float) -> bool:
    return abs(value - round(value)) < 1e-6  # noqa: PLR2004


class Pacer:
    """One key's pacing state; every method takes the current time in seconds.

    Args:
        max_pause: the longest shared pause a 429 may impose on every caller.
        share: the part of the learned rate to use (1: all of it).
    """

    __slots__ = (
        "_admitted",
        "_blind_cap",
        "_blind_fail",
        "_blind_interval",
        "_cycle_start",
        "_foreign_count",
        "_foreign_time",
        "_lag",
        "_last_429",
        "_last_send",
        "_longest_reset",
        "_penalty",
        "_policy_interval",
        "_quiet_since",
        "_samples",
        "_sends",
        "_stmt_precise",
        "_stmt_remaining",
        "_stmt_reset",
        "_stmt_sent",
        "in_flight",
        "limit",
        "max_pause",
        "pause_until",
        "shape",
        "share",
    )

    def __init__(self, *, max_pause: float, share: float = 1.0) -> None:
        self.max_pause = max_pause
        self.share = share
        self.shape = Shape.UNKNOWN
        self.limit: int | None = None
        self.pause_until = -math.inf
        self.in_flight = 0
        self._samples: collections.deque[float] = collections.deque(maxlen=_SAMPLES)
        self._longest_reset = 0.0
        self._policy_interval: float | None = None
        self._penalty = 1.0
        self._last_send = -math.inf
        self._last_429 = -math.inf
        self._lag = 0.0
        self._sends: list[float] = []
        self._stmt_sent = -math.inf
        self._stmt_remaining: int | None = None
        self._stmt_reset: float | None = None
        self._stmt_precise = False
        self._blind_interval = 0.0
        self._blind_cap = _BLIND_START_CAP
        self._blind_fail = 0.0
        self._quiet_since = -math.inf
        self._cycle_start: float | None = None
        self._admitted = 0
        self._foreign_count = 0.0
        self._foreign_time = 0.0

    @property
    def interval(self) -> float:
        """Seconds between sends at the learned sustainable rate (0: unpaced), with a safety margin."""
        return self._base_interval() * (1 + _MARGIN)

    def _base_interval(self) -> float:
        return self._learned_interval() / self.share

    def _learned_interval(self) -> float:
        if self.shape is Shape.BLIND:
            return self._blind_interval
        if self._policy_interval is not None:
            base = self._policy_interval
        elif self._samples:
            base = statistics.median(self._samples)
            if self.limit:
                # The longest reset seen spans about a whole window: a sustained
                # rate can never go beyond ``limit`` per window.
                base = max(base, self._longest_reset / self.limit)
        else:
            base = 0.0
        return base * self._penalty

    @property
    def remaining(self) -> int | None:
        """The server's latest ``Remaining`` less this client's sends since."""
        if self._stmt_remaining is None:
            return None
        return max(self._stmt_remaining - self._unseen(), 0)

    @property
    def foreign_rate(self) -> float:
        """Requests per second other clients spend from the same key, as far as the answers show."""
        return self._foreign_count / self._foreign_time if self._foreign_time > 0 else 0.0

    def _unseen(self) -> int:
        """Sends made after the request whose answer is the latest statement."""
        return len(self._sends) - bisect.bisect_right(self._sends, self._stmt_sent)

    def _sends_between(self, start: float, end: float) -> int:
        return bisect.bisect_right(self._sends, end) - bisect.bisect_right(self._sends, start)

    def slot(self, now: float) -> float:
        """The earliest time the next send may leave (``inf``: wait for an answer first)."""
        step = self._base_interval()
        interval = step * (1 + _MARGIN)
        slot = max(now, self.pause_until, self._last_send + interval)
        if self.shape is Shape.UNKNOWN and self.in_flight >= 1:
            return math.inf
        if self.shape is Shape.BLIND and not self._blind_interval and self.in_flight >= self._blind_cap:
            return math.inf
        if self._stmt_precise and self._stmt_remaining is not None and self._stmt_reset is not None:
            unseen, reset = self._unseen(), self._stmt_reset
            # Others on the key keep spending from the same statement until its reset.
            foreign = self.foreign_rate * max(min(slot, reset) - self._stmt_sent, 0.0)
            if slot >= reset or self._stmt_remaining - unseen - foreign < 1:
                # Our sends past the statement's credit each took the next slot
                # after the reset: replay them the way a bucket counts them, from
                # when each actually left (a late one pushes the ones after it).
                first = len(self._sends) - unseen + self._stmt_remaining
                beyond = self._sends[first:] if first < len(self._sends) else []
                if beyond and not interval:
                    return math.inf  # spent, and no rate known yet: wait for the next answer
                # The server's own word replaces the margin here (``step``, not
                # ``interval``): the lag covers the jitter.
                moment = reset
                for sent in beyond:
                    moment = max(moment, sent + self._lag) + step
                # Late by a hair, never early; the hair is small beside the
                # interval, since a bucket carries lateness over to every later send.
                guard = min(_GUARD, _MARGIN * interval) if interval else _GUARD
                slot = max(slot, moment + guard)
        return slot

    def take(self, now: float, slot: float | None = None) -> None:
        """Record a send leaving at ``now``, in the ``slot`` it was given (once :meth:`slot` allows it).

        The next slot counts from the one given, not from a late departure, so
        a caller woken late does not push every later send back; it catches up
        at most half an interval, so a long stall does not turn into a burst.
        """
        scheduled = now if slot is None else slot
        self._last_send = max(scheduled, now - self.interval / 2)
        self._sends.append(now)
        if len(self._sends) > 2 * _HISTORY:
            del self._sends[:_HISTORY]
        self.in_flight += 1
        if self._cycle_start is None:
            self._cycle_start = now
            self._quiet_since = now

    def release(self) -> None:
        """Forget a send whose attempt ended without any answer."""
        self.in_flight = max(self.in_flight - 1, 0)

    def observe(
        self,
        now: float,
        *,
        sent: float,
        status: int,
        limit: int | None,
        remaining: int | None,
        reset: float | None,
        reset_resolution: float,
        window: float | None,
        retry: float | None,
    ) -> None:
        """Learn from an answer to a request sent at ``sent``.

        ``reset`` and ``retry`` are moments on the same clock, not delays.
        """
        self.release()
        if remaining is not None and reset is not None:
            self._statement(sent, status, limit, remaining, reset, reset_resolution, window)
        elif self.shape is Shape.UNKNOWN:
            self.shape = Shape.BLIND
        if status == _RATE_LIMITED:
            self._rate_limited(now, sent, reset, retry)
            return
        self._admitted += 1
        self._penalty = max(self._penalty * _PENALTY_DECAY, 1.0)
        self._lag *= _LAG_DECAY
        if self.shape is Shape.BLIND and now - self._quiet_since >= _QUIET:
            self._quiet_since = now
            if self._blind_interval:
                self._speed_up(now)
            else:
                self._blind_cap += 1

    def _statement(
        self,
        sent: float,
        status: int,
        limit: int | None,
        remaining: int,
        reset: float,
        resolution: float,
        window: float | None,
    ) -> None:
        self.shape = Shape.HEADERS
        if limit is not None and limit > 0:
            if limit != self.limit:
                self._longest_reset = 0.0  # a new policy: its window is yet to be seen
            self.limit = limit
            if window is not None and window > 0:
                self._policy_interval = window / limit
        precise = resolution == 0
        # A refused request says nothing about the rate, and "some left, no
        # reset" (a token bucket with tokens to spare) says nothing about when
        # they come back.
        newer = sent >= self._stmt_sent  # a newer request's answer; late answers only give samples
        if newer:
            self._foreign(sent, remaining, reset, precise)
        informative = status != _RATE_LIMITED and reset > sent + _GUARD
        if informative and (precise or self._policy_interval is None):
            span = reset - sent
            # Others on the key will spend part of what remains before the reset.
            ours = remaining + 1 - self.foreign_rate * span
            if ours >= 1:
                self._samples.append(span / ours)
            self._longest_reset = max(self._longest_reset, span)
        if newer:
            self._stmt_sent, self._stmt_remaining = sent, remaining
            self._stmt_reset, self._stmt_precise = reset, precise

    def _foreign(self, sent: float, remaining: int, reset: float, precise: bool) -> None:
        """Count what others spent between the latest statement and this newer one of the same window."""
        previous = self._stmt_remaining
        if previous is None or self._stmt_reset is None or not (precise and self._stmt_precise):
            return
        if abs(reset - self._stmt_reset) > 2 * _GUARD + 0.001 or sent < self._stmt_sent + _GUARD:
            return  # another window (or a bucket, whose reset moves with every request)
        others = previous - remaining - self._sends_between(self._stmt_sent, sent)
        self._foreign_count = self._foreign_count * _FOREIGN_DECAY + max(others, 0)
        self._foreign_time = self._foreign_time * _FOREIGN_DECAY + (sent - self._stmt_sent)

    def _rate_limited(self, now: float, sent: float, reset: float | None, retry: float | None) -> None:
        if retry is not None:
            until = retry
            # A Retry-After that is a precise reset rounded up to whole seconds
            # (both counted from when the limiter decided): trust the reset.
            decided = retry - (now - sent)
            if self._stmt_precise and reset is not None and reset - _GUARD <= decided <= reset + 1.0 + _GUARD:
                until = max(reset + _GUARD, now)
        elif reset is not None:
            until = reset + _GUARD
        else:
            until = now + _DEFAULT_PAUSE
        wait = until - now
        usable = wait <= self.max_pause
        if not usable:
            wait = min(_PROBE_PAUSE, self.max_pause)
        self.pause_until = max(self.pause_until, now + wait)
        if sent <= self._last_429 or not usable:
            return  # sent before the previous 429 arrived: the same event, already learned from
        self._last_429 = now
        if self.shape is Shape.BLIND:
            self._learn_blind(now, retry)
        elif self._stmt_precise and reset is not None:
            # The refused request's own reset says how early it arrived.
            early = max(reset - sent, 0.0)
            ceiling = _MAX_LAG_SHARE * self.interval
            self._lag = min(max(self._lag, early + _GUARD, _MIN_LAG), ceiling)
            self._penalty = min(self._penalty * _NUDGE, _MAX_PENALTY)
        else:
            self._penalty = min(self._penalty * _BACKOFF, _MAX_PENALTY)

    def _speed_up(self, now: float) -> None:
        rate = 1.0 / self._blind_interval
        if not self._blind_fail:
            rate *= _CLIMB
        elif rate < _CEILING * self._blind_fail:
            rate = min(rate * _CREEP, _CEILING * self._blind_fail)
        elif now - self._last_429 >= _LONG_QUIET:
            rate *= _CREEP
        self._blind_interval = 1.0 / rate

    def _learn_blind(self, now: float, retry: float | None) -> None:
        if not self._blind_interval:
            window_end = now + _DEFAULT_PAUSE if retry is None else retry
            if retry is not None and _whole_seconds(retry - now) and retry - now >= 1:
                window_end -= 0.5  # rounded up: the window ended somewhere in the last second
            start = now if self._cycle_start is None else self._cycle_start
            self._blind_interval = min(
                max(window_end - start, 0.001) / max(self._admitted, 1), self.max_pause
            )
        else:
            self._blind_fail = 1.0 / self._blind_interval  # the rate that proved too fast
            self._blind_interval = 1.0 / (_SETTLE * self._blind_fail)
        self._admitted = 0
        self._cycle_start = self.pause_until
        self._quiet_since = self.pause_until

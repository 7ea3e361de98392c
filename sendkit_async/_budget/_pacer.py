"""How fast one key may go, learned from its answers: the SDK's one set of pacing rules.

The :class:`Learner` reads every answer and keeps a :class:`Plan`; admission
(:mod:`._admit`, and its twin in ``budget.lua``) only enforces the plan over
the state every caller shares. So the learning exists once, in Python, for the
in-process budget and the Redis one alike.

Headers are constraints with a known resolution, never one sample taken blindly:

* **The rate.** ``RateLimit-Policy`` (``q`` per ``w`` seconds) names it. A
  fractional reset measures it: each answer gives ``reset / (remaining + 1)``,
  the time granted per request, and the median of recent ones is used, never
  faster than ``longest reset / limit`` (a window's sustained rate; while
  others spend from the key too, that alone, as their spend shrinks every
  sample). A reset in
  whole seconds or an epoch timestamp only bounds the truth, so there the rate
  is ``limit / window`` with the window estimated from what cannot be rounding
  or clock skew: the largest whole-second delay seen; for epoch resets, the
  gap between the reset moments of two requests decided less than half that
  gap apart (so in adjacent windows: one window's length) and the spread of
  ``reset - sent`` once the server's clock offset is bounded (the reset is
  always after the request was decided, so ``min(reset - sent)`` bounds the
  offset). Windows named by an epoch are taken to be at least a second, and
  so is that of a bucket that has not yet run dry (its resets are all 0).
* **Others on the key.** Two answers of the same window (the same epoch reset,
  or a countdown consistent with our sends) show how much more than our own
  sends the key spent between them; that foreign rate is taken off the key's,
  never leaving fewer than 2.5 of our sends a window (so it stays measured),
  and it halves every two windows in which it is not measured again.
* **The statement.** A fractional reset is precise: once our sends since the
  latest answer use up its ``remaining`` (less what others spend meanwhile),
  the next waits for that reset. While no rate is known yet, sends past the
  statement's ``remaining`` wait for the next answer. A rounded reset is not enforced: the rate
  alone paces, since waiting for a reset that may be a second late would cost
  more than it saves.
* **A 429** pauses every caller: until its precise reset; or, at a known
  rate, for one interval when it comes from a bucket (no countdown seen: its
  refusal lasts less than that) and for two when it is a window's first in a
  while (jitter at its edge); or else until ``Retry-After``. Each
  unexplained refusal slows the rate 3% (forgotten 0.03% a success, so the
  pace settles where fewer than 1% of requests are refused).
* **The margin.** Sends go 2% slower than the learned rate under a window,
  3% elsewhere (a bucket of burst 1 refuses any request that arrives early).
* **Late sends.** A caller woken late (the loop was busy) does not push back
  every later send: under a window (``Remaining`` counts down with our
  sends) up to 15% of an interval is made up for; elsewhere (a bucket of
  burst 1 refuses two sends closer than its interval) only the margin.
* **No fields at all**: until the first 429, two requests fly at once (one
  more per quiet second); the first 429 turns the requests admitted since the
  start, over the time to the window's end that ``Retry-After`` brackets, into
  a rate. It climbs 10% each quiet second in which the callers really asked
  for it, until a 429 marks the ceiling; the pace then settles 1% under the
  last rate that held two quiet seconds and creeps back toward one climbing
  step under the ceiling.

Until the first answer, one request at a time goes out, so a job never opens
with a burst the server would refuse.
"""

from __future__ import annotations

import enum
import statistics
from typing import Any, Final

import attrs

from ._protocol import Shape

__all__ = ["Family", "Learner", "Plan"]

_RATE_LIMITED: Final = 429
NEVER: Final = -1e18
# A send this long after a stated reset lands after it, despite clock jitter.
_GUARD: Final = 0.003
# Sends go this share of an interval later than the learned rate allows, so
# that jitter on the way does not land one before the server's next slot.
_MARGIN: Final = 0.02
_BUCKET_MARGIN: Final = 0.03
_SAMPLES: Final = 9
_DEFAULT_PAUSE: Final = 1.0
_PROBE_PAUSE: Final = 1.0
_QUIET: Final = 1.0
# An unexplained 429 slows the rate this much; each success forgets a little of it.
_PENALTY_STEP: Final = 1.03
_PENALTY_DECAY: Final = 0.9997
_MAX_PENALTY: Final = 4.0
# Under a window, a send this share of an interval late is made up for: with the
# margin, no window can receive one request more than its share.
_WINDOW_CATCHUP: Final = 0.15
# A first refusal after this long without one, at a known rate, is jitter at a
# window's edge: a pause of a couple of intervals, not a whole rounded second.
_CALM: Final = 2.0
_NUDGE_INTERVALS: Final = 2.0
# A reset named by an epoch: the server's clock is taken to be within this of ours.
_SKEW_BOUND: Final = 2.0
_MIN_EPOCH_WINDOW: Final = 1.0
_FOREIGN_DECAY: Final = 0.9
# The foreign rate never leaves us less than this share of the key, nor fewer
# than this many sends a window; unrenewed, it halves every two windows.
_MIN_SHARE: Final = 0.05
_MIN_PER_WINDOW: Final = 2.5
_FOREIGN_STALE: Final = 2.0
# A 429 for a send a precise statement allowed: our sends arrive later than
# they leave; allow that much (at most a fifth of an interval), forgetting 1% a success.
_MIN_LAG: Final = 0.002
_MAX_LAG_SHARE: Final = 0.2
_LAG_DECAY: Final = 0.99
# Blind pacing: two in flight (one more a quiet second) until the first 429
# gives a rate; it climbs 10% each quiet second in which the callers really
# asked for it; a 429 marks the ceiling: the pace settles 1% under the last
# rate that held two quiet seconds, then creeps 2% a quiet second back to one
# climbing step under the ceiling, and probes above it only after 30 quiet seconds.
_BLIND_START_CAP: Final = 2
_TESTED: Final = 0.8
_CLIMB: Final = 1.1
_SETTLE: Final = 0.99
_BACKOFF: Final = 0.9
_CREEP: Final = 1.02
_LONG_QUIET: Final = 30.0


class Family(enum.IntEnum):
    """What kind of reset the server sends (how much the learner may trust it)."""

    NONE = 0  # no reset seen
    PRECISE = 1  # fractional seconds from now
    WHOLE = 2  # whole seconds from now
    EPOCH = 3  # a moment on the server's clock


@attrs.frozen
class Plan:
    """What admission enforces: the learner's whole output, plain numbers in the budget's time.

    Attributes:
        interval: seconds between sends (0: unpaced).
        cap: the most requests in flight (0: no cap).
        pause_until: no send leaves before this (a 429's pause).
        credit: sends the latest precise statement allows after the send
            numbered ``credit_seq`` (-1: no statement to enforce).
        credit_seq: the sequence number of the statement's own request.
        credit_from: when that statement was made.
        drain: requests per second others spend from the same credit.
        hold_until: when the statement's reset comes (sends past the credit wait for it).
        catchup: how late a send may leave without pushing back the ones after
            it (the next slot still counts from the one it was given).
    """

    interval: float = 0.0
    cap: int = 1
    pause_until: float = NEVER
    credit: int = -1
    credit_seq: int = 0
    credit_from: float = NEVER
    drain: float = 0.0
    hold_until: float = NEVER
    catchup: float = 0.0


@attrs.define
class Learner:
    """One key's pacing knowledge; every method takes the budget's current time in seconds.

    Plain data, so a shared budget can keep it in Redis (:meth:`dump`, :meth:`load`).

    Args:
        max_pause: the longest shared pause a 429 may impose on every caller.
        share: the part of the learned rate to use (1: all of it).
    """

    max_pause: float
    share: float = 1.0
    shape: str = Shape.UNKNOWN.value
    family: int = Family.NONE
    limit: int = 0
    policy: float = 0.0  # seconds per request named by RateLimit-Policy
    samples: list[float] = attrs.Factory(list)
    longest: float = 0.0
    max_delay: float = 0.0  # the largest whole-second reset delay seen
    span_max: float = NEVER  # epoch resets: max(reset - sent)
    offset_hi: float = -NEVER  # epoch resets: min(reset - sent) bounds the server's clock offset
    gap: float = 0.0  # epoch resets: the smallest gap between two distinct reset moments
    last_epoch: float = NEVER
    last_epoch_sent: float = NEVER
    penalty: float = 1.0
    lag: float = 0.0
    pause_until: float = NEVER
    last_429: float = NEVER
    st_seq: int = -1
    st_sent: float = NEVER
    st_remaining: int = -1
    st_reset: float = NEVER
    f_count: float = 0.0
    f_time: float = 0.0
    f_last: float = NEVER
    countdown: bool = False  # Remaining has been seen to fall with our sends: a window, not a bucket
    blind_cap: int = _BLIND_START_CAP
    blind_interval: float = 0.0
    blind_good: float = 0.0
    blind_held: float = 0.0
    blind_fail: float = 0.0
    admitted: int = 0
    cycle_start: float = NEVER
    quiet_since: float = NEVER

    def dump(self) -> dict[str, Any]:
        """The state as a JSON-ready dict."""
        return attrs.asdict(self)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Learner:
        """Rebuild from :meth:`dump` (unknown fields, from another version, are ignored)."""
        names = {field.name for field in attrs.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    # -- what the answers say ------------------------------------------------

    @property
    def foreign_rate(self) -> float:
        """Requests per second other clients spend from the same key, as far as the answers show."""
        return self.f_count / self.f_time if self.f_time > 0 else 0.0

    def window(self) -> float:
        """The limiter's window in seconds, as far as rounded resets let us know it (0: unknown)."""
        if self.family == Family.WHOLE:
            return max(self.max_delay, 1.0)
        if self.family == Family.EPOCH:
            spread = self.span_max - max(self.offset_hi, 0.0)
            return max(_MIN_EPOCH_WINDOW, self.gap, spread, self.span_max - _SKEW_BOUND)
        if self.family == Family.PRECISE:
            # A bucket with tokens to spare answers "reset 0": until it runs dry,
            # take its Limit as the requests of a second.
            return max(self.longest, 1.0)
        return 0.0

    def key_interval(self) -> float:
        """Seconds per request the key sustains, for everyone on it (0: unknown)."""
        if self.shape == Shape.BLIND.value:
            return self.blind_interval
        if self.policy:
            return self.policy
        if self.family == Family.PRECISE and self.samples:
            if self.limit and self.foreign_rate:
                # Others' spend shrinks every sample; the window's own length does not change.
                return self.longest / self.limit
            base = statistics.median(self.samples)
            return max(base, self.longest / self.limit) if self.limit else base
        window = self.window()
        if window and self.limit:
            return window / self.limit
        return statistics.median(self.samples) if self.samples else 0.0

    def interval(self) -> float:
        """Seconds between our sends: the key's rate less others' spend, slowed by 429s, with a margin."""
        key = self.key_interval()
        if not key:
            return 0.0
        # The margin guards the key's limit, which others spend too: take it off
        # the key's rate before their share, so it is never a sliver of ours.
        rate = 1.0 / (key * (1 + self.margin()))
        # Never so slow that two of our answers stop landing in one window:
        # the estimate of others' spend would then never be measured again.
        window = self.window() or self.longest
        floor = max(_MIN_SHARE * rate, min(_MIN_PER_WINDOW / window, rate) if window else 0.0)
        ours = max(rate - self.foreign_rate, floor)
        return self.penalty / (ours * self.share)

    def margin(self) -> float:
        """How much slower than the learned rate sends go, so that jitter on the way lands none early.

        A window only counts requests per window; a bucket of burst 1 refuses
        any request that arrives early, so until the answers show a window
        the margin is wider.
        """
        return _MARGIN if self.countdown else _BUCKET_MARGIN

    def catchup(self, interval: float) -> float:
        """How late a send may leave and still keep the schedule.

        A window counts requests per window, so a late send may be made up
        for (up to a share of an interval that cannot put one more in any
        window). A bucket of burst 1 refuses two sends closer than its
        interval, so elsewhere only the margin may be made up.
        """
        margin = self.margin()
        share = _WINDOW_CATCHUP if self.countdown else margin / (1 + margin)
        return share * interval

    def plan(self) -> Plan:
        """What admission enforces now.

        Nothing the answers say holds sends back longer than ``max_pause``
        (at least a second) without a fresh answer: a slower rate, or a
        statement's reset further off, lets one request through to ask again.
        """
        ceiling = max(self.max_pause, _PROBE_PAUSE)
        interval = min(self.interval(), ceiling)
        if self.shape == Shape.UNKNOWN.value:
            cap = 1
        elif self.shape == Shape.BLIND.value and not self.blind_interval:
            cap = self.blind_cap
        else:
            cap = 0
        plan = Plan(interval=interval, cap=cap, pause_until=self.pause_until, catchup=self.catchup(interval))
        if self.st_remaining < 0 or (interval and self.family != Family.PRECISE):
            return plan  # no statement, or a rounded one: the rate alone paces
        # No rate known yet: spend what the latest answer allows, then wait for
        # its reset (an answer in flight may say more sooner). Otherwise a
        # precise statement: sends past it wait for its reset.
        precise = bool(interval)
        return attrs.evolve(
            plan,
            credit=self.st_remaining,
            credit_seq=self.st_seq,
            credit_from=self.st_sent,
            drain=self.foreign_rate if precise else 0.0,
            hold_until=min(self.st_reset + _GUARD + (self.lag if precise else 0.0), self.st_sent + ceiling),
        )

    # -- learning ------------------------------------------------------------

    def observe(
        self,
        now: float,
        *,
        seq: int,
        sent: float,
        status: int,
        received: float | None = None,
        limit: int | None = None,
        remaining: int | None = None,
        reset: float | None = None,
        reset_resolution: float = 0.0,
        reset_server: bool = False,
        window: float | None = None,
        retry: float | None = None,
    ) -> None:
        """Learn from the answer to the send numbered ``seq``, which left at ``sent``.

        ``received`` is when the answer arrived (``now`` when not given).
        ``reset`` and ``retry`` are moments in the budget's time; ``reset_server``
        says the reset was an epoch timestamp, so it carries the server's clock offset.
        """
        if remaining is not None and reset is not None:
            self._statement(
                seq, sent, status, limit, remaining, reset, reset_resolution, reset_server, window
            )
        elif self.shape == Shape.UNKNOWN.value:
            self.shape = Shape.BLIND.value
        if self.cycle_start == NEVER:
            self.cycle_start = self.quiet_since = sent
        if status == _RATE_LIMITED:
            self._rate_limited(
                now, sent, now if received is None else received, reset, retry, reset_resolution
            )
            return
        self.admitted += 1
        self.penalty = max(self.penalty * _PENALTY_DECAY, 1.0)
        self.lag *= _LAG_DECAY
        if self.shape == Shape.BLIND.value:
            self._blind_success(now)

    def _statement(
        self,
        seq: int,
        sent: float,
        status: int,
        limit: int | None,
        remaining: int,
        reset: float,
        resolution: float,
        server: bool,
        window: float | None,
    ) -> None:
        self.shape = Shape.HEADERS.value
        if limit is not None and limit > 0:
            if limit != self.limit:
                self.longest = 0.0  # a new policy: its window is yet to be seen
            self.limit = limit
            if window is not None and window > 0:
                self.policy = window / limit
        if server:
            self.family = Family.EPOCH
            self._epoch(sent, reset, resolution)
        elif resolution >= 1:
            self.family = max(self.family, Family.WHOLE)
            # The value as sent was a whole number of seconds from the decision.
            self.max_delay = max(self.max_delay, round(reset - sent))
        elif self.family in {Family.NONE, Family.PRECISE}:
            self.family = Family.PRECISE
            # A refused request's reset says nothing about the rate, and "some
            # left, no reset" (a bucket with tokens to spare) nothing about when.
            if status != _RATE_LIMITED and reset > sent + _GUARD:
                span = reset - sent
                self.samples = [*self.samples[-(_SAMPLES - 1) :], span / (remaining + 1)]
                self.longest = max(self.longest, span)
        if seq > self.st_seq:
            if status != _RATE_LIMITED and self.st_seq >= 0:
                self._foreign(seq, sent, remaining, reset, server)
            self.st_seq, self.st_sent, self.st_remaining, self.st_reset = seq, sent, remaining, reset

    def _epoch(self, sent: float, reset: float, resolution: float) -> None:
        delay = reset - sent
        self.span_max = max(self.span_max, delay)
        self.offset_hi = min(self.offset_hi, delay)
        gap = abs(reset - self.last_epoch)
        # Two requests decided less than half the gap apart lie in adjacent
        # windows, so the gap is one window (not several, skipped while idle).
        if gap > max(resolution, 0.001) / 2 and abs(sent - self.last_epoch_sent) < gap / 2:
            self.gap = gap if not self.gap else min(self.gap, gap)
        self.last_epoch, self.last_epoch_sent = reset, sent

    def _foreign(self, seq: int, sent: float, remaining: int, reset: float, server: bool) -> None:
        """Count what others spent between the latest statement and this newer one of the same window."""
        ours = seq - self.st_seq
        elapsed = sent - self.st_sent
        if elapsed <= 0:
            return
        if self.family == Family.PRECISE:
            same = abs(reset - self.st_reset) <= 2 * _GUARD + 0.001
        elif server:
            same = abs(reset - self.st_reset) < 0.002  # noqa: PLR2004 - a millisecond either way
        else:
            same = (
                remaining + ours <= self.st_remaining and reset - sent <= self.st_reset - self.st_sent + 0.001
            )
            same = same and elapsed < self.window()
        if not same:
            # Evidence of others' spend that is no longer renewed fades.
            if sent - self.f_last > _FOREIGN_STALE * max(self.window(), 1.0):
                self.f_count *= 0.5
                self.f_last = sent
            return
        self.f_last = sent
        if remaining < self.st_remaining:
            self.countdown = True
        others = self.st_remaining - remaining - ours
        self.f_count = self.f_count * _FOREIGN_DECAY + max(others, 0)
        self.f_time = self.f_time * _FOREIGN_DECAY + elapsed

    def _rate_limited(
        self,
        now: float,
        sent: float,
        received: float,
        reset: float | None,
        retry: float | None,
        resolution: float,
    ) -> None:
        if sent <= self.last_429:
            return  # sent before the previous 429 arrived: the same event, already paused for
        precise = self.family == Family.PRECISE and reset is not None and resolution < 1
        calm = now - self.last_429 >= _CALM
        interval = self.interval()
        if precise and reset is not None and (retry is None or reset - _GUARD <= retry + _GUARD):
            # A Retry-After that is a precise reset rounded up: trust the reset.
            until = max(reset + _GUARD + self.lag, now)
        elif retry is not None and interval and not self.countdown:
            until = min(retry, now + interval)  # a bucket's refusal lasts less than an interval
        elif retry is not None and interval and calm:
            # A window's first refusal in a while at a known rate: jitter at its edge.
            until = min(retry, now + _NUDGE_INTERVALS * interval)
        elif retry is not None:
            until = retry
        else:
            until = now + _DEFAULT_PAUSE
        wait = until - now
        usable = wait <= self.max_pause
        if not usable:
            wait = min(_PROBE_PAUSE, self.max_pause)
        self.pause_until = max(self.pause_until, now + wait)
        self.last_429 = now
        if not usable:
            return
        if self.shape == Shape.BLIND.value:
            self._learn_blind(sent, received, retry)
        elif precise and reset is not None:
            early = max(reset - sent, 0.0)
            self.lag = min(max(self.lag, early + _GUARD, _MIN_LAG), _MAX_LAG_SHARE * interval)
        else:
            self.penalty = min(self.penalty * _PENALTY_STEP, _MAX_PENALTY)

    def _blind_success(self, now: float) -> None:
        if now - self.quiet_since < _QUIET:
            return
        tested = (
            self.admitted >= _TESTED * (now - self.quiet_since) / self.blind_interval
            if self.blind_interval
            else True
        )
        self.quiet_since = now
        if not self.blind_interval:
            self.blind_cap += 1
            return
        self.admitted = 0
        if not tested:
            return  # the callers did not ask for this rate: it proved nothing
        # A rate that held one second may have been lucky with the window's
        # phase; the one before it held two.
        self.blind_held, self.blind_good = self.blind_good, 1.0 / self.blind_interval
        if not self.blind_fail:
            self.blind_interval /= _CLIMB
        else:
            # Creep back toward one climbing step under the rate that failed.
            ceiling = _SETTLE * self.blind_fail / _CLIMB
            if now - self.last_429 >= _LONG_QUIET:
                ceiling = self.blind_fail * _CREEP
            self.blind_interval = 1.0 / min(
                _CREEP / self.blind_interval, max(ceiling, 1.0 / self.blind_interval)
            )

    def _learn_blind(self, sent: float, received: float, retry: float | None) -> None:
        if not self.blind_interval:
            # The requests admitted since the start, over the time to the window's end.
            span = max(_window_end(sent, received, retry) - self.cycle_start, 0.001)
            self.blind_interval = min(span / max(self.admitted, 1), self.max_pause)
        else:
            rate = 1.0 / self.blind_interval
            self.blind_fail = rate
            held = self.blind_held or self.blind_good or _BACKOFF * rate
            self.blind_interval = 1.0 / (_SETTLE * min(held, rate))
            self.blind_held = self.blind_good = 0.0
        self.admitted = 0
        self.quiet_since = self.pause_until


def _window_end(sent: float, received: float, retry: float | None) -> float:
    """When a refused request's window most likely ends, from its ``Retry-After``.

    Whole seconds are rounded up, counted from when the server decided (between
    the send and the answer): the end lies in ``(sent + after - 1, retry]``;
    the middle of that is the guess.
    """
    if retry is None:
        return received + _DEFAULT_PAUSE
    after = retry - received
    if round(after) >= 1 and abs(after - round(after)) < 1e-6:  # noqa: PLR2004 - whole seconds
        return (sent + after - 1 + retry) / 2
    return retry

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
* **No fields at all** (nginx's ``limit_req``, HAProxy, a bare ``Retry-After``):
  the rate is found by a bracket. Pacing starts at one request per first
  answer's latency and doubles each time a rate is proven (it held without
  a refusal: for a second, or, once the limiter shows it is a bucket by
  refusing the first send that came too early, for two sends); the first
  refusal marks a rate too fast, and each probe after it goes 40% of the way
  (in ratio) from the fastest proven rate to the slowest refused one, so
  fewer probes are refused than in a bisection, until the two are within 5%:
  then the proven rate holds. A refusal at a proven rate (another tenant came)
  drops the proven rate by 10% and opens the bracket again, and after 30
  quiet seconds the ceiling is let up 5% to find a tenant that left. After a
  refusal the pace waits one interval of the new rate when the limiter is a
  bucket (its refusal lasts less), else for ``Retry-After`` (or a second).

Until the first answer, one request at a time goes out, so a job never opens
with a burst the server would refuse.
"""

from __future__ import annotations

import enum
import statistics
from typing import Any, Final

import attrs

from ._bracket import Bracket
from ._protocol import NEVER, Shape
from ._tuning import TUNING

__all__ = ["Family", "Learner", "Plan"]

_RATE_LIMITED: Final = 429


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
        quota: with ``period``, a fixed window's whole quota: from
            ``hold_until`` on, each ``period`` allows ``quota`` sends more
            than the credit (0: past ``hold_until`` nothing is enforced).
        period: the window's length in seconds (0: no windows after the hold).
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
    quota: int = 0
    period: float = 0.0


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
    refills: bool = False  # Remaining came back whole after a long reset: a fixed window
    last_seen: float = NEVER  # the latest answer
    interactive_at: float = NEVER  # the latest answer to an interactive caller
    blind: Bracket = attrs.Factory(Bracket)  # the rate found without fields, by a bracket

    def dump(self) -> dict[str, Any]:
        """The state as a JSON-ready dict."""
        return attrs.asdict(self)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Learner:
        """Rebuild from :meth:`dump` (unknown fields, from another version, are ignored)."""
        names = {field.name for field in attrs.fields(cls)}
        known = {key: value for key, value in data.items() if key in names}
        if isinstance(known.get("blind"), dict):
            known["blind"] = Bracket.load(known["blind"])
        else:
            known.pop("blind", None)
        return cls(**known)

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
            return max(TUNING.min_epoch_window, self.gap, spread, self.span_max - TUNING.skew_bound)
        if self.family == Family.PRECISE:
            # A bucket with tokens to spare answers "reset 0": until it runs dry,
            # take its Limit as the requests of a second.
            return max(self.longest, 1.0)
        return 0.0

    def key_interval(self) -> float:
        """Seconds per request the key sustains, for everyone on it (0: unknown)."""
        if self.shape == Shape.BLIND.value:
            return 1.0 / self.blind.rate if self.blind.rate else 0.0
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
        floor = max(TUNING.min_share * rate, min(TUNING.min_per_window / window, rate) if window else 0.0)
        ours = max(rate - self.foreign_rate, floor)
        return self.penalty / (ours * self.share)

    def margin(self) -> float:
        """How much slower than the learned rate sends go, so that jitter on the way lands none early.

        A window only counts requests per window; a bucket of burst 1 refuses
        any request that arrives early, so until the answers show a window
        the margin is wider. Without fields the rates tried are proven or
        refused as sent, so only a sliver is kept for jitter.
        """
        if self.shape == Shape.BLIND.value:
            return TUNING.blind_margin
        return TUNING.margin if self.countdown else TUNING.bucket_margin

    def catchup(self, interval: float) -> float:
        """How late a send may leave and still keep the schedule.

        A window counts requests per window, so a late send may be made up
        for (up to a share of an interval that cannot put one more in any
        window). A bucket of burst 1 refuses two sends closer than its
        interval, so elsewhere only the margin may be made up.
        """
        margin = self.margin()
        share = TUNING.window_catchup if self.countdown else margin / (1 + margin)
        return share * interval

    def plan(self) -> Plan:
        """What admission enforces now.

        Nothing the answers say holds sends back longer than ``max_pause``
        (at least a second) without a fresh answer: a slower rate, or a
        statement's reset further off, lets one request through to ask again.
        """
        ceiling = max(self.max_pause, TUNING.probe_pause)
        burst = self._burst()
        if burst is not None:
            # A fixed window whose end is known: its quota goes at its start, the rest waits.
            period, end = burst
            return Plan(
                interval=0.0,
                cap=0,
                pause_until=self.pause_until,
                credit=self.st_remaining,
                credit_seq=self.st_seq,
                credit_from=self.st_sent,
                drain=self.foreign_rate,
                hold_until=min(end + TUNING.guard + self.lag, self.st_sent + ceiling),
                quota=self.limit,
                period=period,
            )
        interval = min(self.interval(), ceiling)
        blind_opening = self.shape == Shape.BLIND.value and not self.blind.rate
        cap = 1 if self.shape == Shape.UNKNOWN.value or blind_opening else 0
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
            hold_until=min(
                self.st_reset + TUNING.guard + (self.lag if precise else 0.0), self.st_sent + ceiling
            ),
        )

    def _burst(self) -> tuple[float, float] | None:
        """A fixed window's length and the end of the latest statement's, when both are known well.

        Known well: the answers show a window (``Remaining`` falls with our
        sends and comes back whole after a reset longer than a few sends'
        worth), nobody else spends from the key (a burst would race them), no
        interactive call was heard of in the last 10 seconds (one arriving
        after a window's quota went would wait for the next window, so the
        window is at most 2 seconds long), and
        its end to within 5% of its length: a fractional reset,
        or an epoch reset whose server clock offset the answers bound that
        closely (``reset - sent`` is at most the offset, and at least the
        offset less a window: samples from both ends of windows close the
        gap; a reset rounded to whole seconds never does). Then the window's
        quota is sent at its start, as the limiter allows, instead of spread over it.
        """
        alone = self.foreign_rate * self.key_interval() < TUNING.alone
        # An interactive caller arriving after the window's quota went would wait for the next one.
        quiet = self.last_seen - self.interactive_at > TUNING.interactive_quiet
        if not (self.refills and self.countdown and self.limit and alone and quiet) or self.st_remaining < 0:
            return None
        burst = self._window_end()
        return burst if burst is not None and burst[0] <= TUNING.burst_window else None

    def _window_end(self) -> tuple[float, float] | None:
        """The window's length and the end of the latest statement's, as far as the resets tell them."""
        if self.family == Family.PRECISE:
            period = self.policy * self.limit if self.policy else self.longest
            return (period, self.st_reset) if period > 0 else None
        if self.family == Family.EPOCH:
            period = self.window()
            offset_lo = self.span_max - period  # a reset is at most a window after its decision
            if self.offset_hi - offset_lo > TUNING.phase_share * period:
                return None
            return period, self.st_reset - offset_lo
        return None

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
        blocked: float | None = None,
        interactive: bool = False,
    ) -> None:
        """Learn from the answer to the send numbered ``seq``, which left at ``sent``.

        ``received`` is when the answer arrived (``now`` when not given).
        ``reset``, ``retry`` and ``blocked`` are moments in the budget's time;
        ``reset_server`` says the reset was an epoch timestamp, so it carries
        the server's clock offset. ``blocked`` is when a longer window with
        nothing left resets: nothing leaves before (within ``max_pause``).
        ``interactive`` says the send was an interactive caller's.
        """
        self.last_seen = now
        if interactive:
            self.interactive_at = now
        if blocked is not None and blocked > now:
            self.pause_until = max(
                self.pause_until, min(blocked + TUNING.guard, now + max(self.max_pause, TUNING.probe_pause))
            )
        if remaining is not None and reset is not None:
            self._statement(
                seq, sent, status, limit, remaining, reset, reset_resolution, reset_server, window
            )
        elif self.shape == Shape.UNKNOWN.value:
            self.shape = Shape.BLIND.value
        received = now if received is None else received
        if self.shape == Shape.BLIND.value and not self.blind.rate:
            # The opening: one request per first latency (within bounds), from now on.
            low, high = TUNING.first_rates
            opening = min(max(1.0 / max(received - sent, TUNING.millisecond), low), high)
            self.blind.pace(opening, max(now, self.pause_until), seq + 1)
        if status == _RATE_LIMITED:
            self._rate_limited(now, sent, received, reset, retry, reset_resolution, seq)
            return
        self.penalty = max(self.penalty * TUNING.penalty_decay, 1.0)
        self.lag *= TUNING.lag_decay
        if self.shape == Shape.BLIND.value:
            self.blind.success(now, seq, self.interval(), self.pause_until)

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
            if status != _RATE_LIMITED and reset > sent + TUNING.guard:
                span = reset - sent
                self.samples = [*self.samples[-(TUNING.samples - 1) :], span / (remaining + 1)]
                self.longest = max(self.longest, span)
        if seq > self.st_seq:
            if status != _RATE_LIMITED and self.st_seq >= 0:
                self._foreign(seq, sent, remaining, reset, server)
                self._refill(remaining, reset)
            self.st_seq, self.st_sent, self.st_remaining, self.st_reset = seq, sent, remaining, reset

    def _refill(self, remaining: int, reset: float) -> None:
        """Note a window coming back whole: a reset a window later, and most of the quota left again.

        A bucket's reset is its next token, a send's worth away, and its
        ``Remaining`` grows back a token at a time.
        """
        step = TUNING.refill_spans * self.key_interval()
        if self.limit and reset - self.st_reset > step and remaining - self.st_remaining >= self.limit / 2:
            self.refills = True

    def _epoch(self, sent: float, reset: float, resolution: float) -> None:
        delay = reset - sent
        self.span_max = max(self.span_max, delay)
        self.offset_hi = min(self.offset_hi, delay)
        gap = abs(reset - self.last_epoch)
        # Two requests decided less than half the gap apart lie in adjacent
        # windows, so the gap is one window (not several, skipped while idle).
        if gap > max(resolution, TUNING.millisecond) / 2 and abs(sent - self.last_epoch_sent) < gap / 2:
            self.gap = gap if not self.gap else min(self.gap, gap)
        self.last_epoch, self.last_epoch_sent = reset, sent

    def _foreign(self, seq: int, sent: float, remaining: int, reset: float, server: bool) -> None:
        """Count what others spent between the latest statement and this newer one of the same window."""
        ours = seq - self.st_seq
        elapsed = sent - self.st_sent
        if elapsed <= 0:
            return
        if self.family == Family.PRECISE:
            same = abs(reset - self.st_reset) <= 2 * TUNING.guard + TUNING.millisecond
        elif server:
            same = abs(reset - self.st_reset) < 2 * TUNING.millisecond  # a millisecond either way
        else:
            same = (
                remaining + ours <= self.st_remaining
                and reset - sent <= self.st_reset - self.st_sent + TUNING.millisecond
            )
            same = same and elapsed < self.window()
        if not same:
            # Evidence of others' spend that is no longer renewed fades.
            if sent - self.f_last > TUNING.foreign_stale * max(self.window(), 1.0):
                self.f_count /= 2  # unmeasured for long: halved
                self.f_last = sent
            return
        self.f_last = sent
        if remaining < self.st_remaining:
            self.countdown = True
        others = self.st_remaining - remaining - ours
        self.f_count = self.f_count * TUNING.foreign_decay + max(others, 0)
        self.f_time = self.f_time * TUNING.foreign_decay + elapsed

    def _rate_limited(
        self,
        now: float,
        sent: float,
        received: float,
        reset: float | None,
        retry: float | None,
        resolution: float,
        seq: int,
    ) -> None:
        if sent <= self.last_429:
            return  # sent before the previous 429 arrived: the same event, already paused for
        if self.shape == Shape.BLIND.value:
            self._blind_refused(now, received, retry, seq)
            return
        precise = self.family == Family.PRECISE and reset is not None and resolution < 1
        calm = now - self.last_429 >= TUNING.calm
        interval = self.interval()
        if precise and reset is not None and (retry is None or reset - TUNING.guard <= retry + TUNING.guard):
            # A Retry-After that is a precise reset rounded up: trust the reset.
            until = max(reset + TUNING.guard + self.lag, now)
        elif retry is not None and interval and not self.countdown:
            until = min(retry, now + interval)  # a bucket's refusal lasts less than an interval
        elif retry is not None and interval and calm:
            # A window's first refusal in a while at a known rate: jitter at its edge.
            until = min(retry, now + TUNING.nudge_intervals * interval)
        elif retry is not None:
            until = retry
        else:
            until = now + TUNING.default_pause
        wait = until - now
        usable = wait <= self.max_pause
        if not usable:
            wait = min(TUNING.probe_pause, self.max_pause)
        self.pause_until = max(self.pause_until, now + wait)
        self.last_429 = now
        if not usable:
            return
        if precise and reset is not None:
            early = max(reset - sent, 0.0)
            self.lag = min(
                max(self.lag, early + TUNING.guard, TUNING.min_lag), TUNING.max_lag_share * interval
            )
        else:
            self.penalty = min(self.penalty * TUNING.penalty_step, TUNING.max_penalty)

    def _blind_refused(self, now: float, received: float, retry: float | None, seq: int) -> None:
        """A refusal without fields: every caller pauses as the bracket says, then it paces anew."""
        until, following = self.blind.refused(now, received, retry, seq, self.max_pause)
        self.pause_until = max(self.pause_until, until)
        if following is not None:
            self.blind.pace(following, max(now, self.pause_until), seq + 1)

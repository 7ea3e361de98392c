"""The rate without fields: a bracket between the fastest rate proven and the slowest refused.

For limiters that say nothing but their refusals (nginx's ``limit_req``,
HAProxy, a bare ``Retry-After``): pacing opens at one request per first
answer's latency and doubles each time a rate is proven (it held without a
refusal); the first refusal marks a rate too fast, and each probe after it
goes part of the way (in ratio) from the fastest proven rate to the slowest
refused one, round rates first, until the two are close: then the proven
rate holds. A refusal at a proven rate (another tenant came) drops it and
opens the bracket again; a long quiet lets the ceiling up. Its constants are
in :mod:`._tuning`; the :class:`~._pacer.Learner` feeds it the answers and
applies the pauses it asks for.
"""

from __future__ import annotations

import math

import attrs

from sendkit_async._logs import logger

from ._protocol import NEVER
from ._tuning import TUNING

__all__ = ["Bracket", "whole_seconds"]


def whole_seconds(wait: float) -> bool:
    """Whether a ``Retry-After`` was whole seconds (so an upper bound, rounded up).

    Within :attr:`~._tuning.Tuning.whole` on either side: ``1 - 1e-7`` is a rounded second too.
    """
    whole = round(wait)
    return whole >= 1 and abs(wait - whole) < TUNING.whole


def _is_roundest(rate: float) -> bool:
    return any(math.isclose(rate, round_rate) for round_rate in TUNING.roundest)


@attrs.define
class Bracket:
    """What the refusals and successes without fields have shown about one key's rate.

    Plain data (the shared budget keeps it in Redis with the learner).
    """

    rate: float = 0.0  # requests per second paced now (0: the opening, one at a time)
    ok: float = 0.0  # the fastest rate proven (0: none yet)
    bad: float = 0.0  # the slowest rate refused (0: none yet)
    since: float = NEVER  # when the current rate began
    seq: int = 0  # the first send paced at it
    wins: int = 0  # its sends answered without a refusal
    bucket: bool = False  # refusals came at once after rises: a bucket
    signs: int = 0  # refusals in a row at the first send after a rise
    streak: int = 0  # refusals in a row
    solid: bool = False  # the proven rate held for a whole proof (not just the opening's)
    quiet: float = NEVER  # the latest refusal or relaxation

    def pace(self, rate: float, start: float, seq: int) -> None:
        """Pace at ``rate`` from ``start`` on; sends from ``seq`` on test it."""
        logger.debug(
            "rate budget (no rate-limit fields): pacing %.2f requests/s (proven %.2f, refused %.2f%s)",
            rate,
            self.ok,
            self.bad,
            ", a bucket" if self.bucket else "",
        )
        self.rate = rate
        self.since, self.seq, self.wins = start, seq, 0

    def next_rate(self) -> float:
        """The rate to try once the current one is proven.

        Limits are set by people, in round numbers: a round rate in the
        bracket (10 a second, 300 a minute) is tried first, the fastest one
        that is not refused yet.
        """
        ok, bad = self.ok, self.bad
        if not bad:
            return ok * TUNING.growth
        if bad / ok <= TUNING.converged or (_is_roundest(ok) and bad / ok <= TUNING.round_converged):
            return ok
        for rates in (TUNING.roundest, TUNING.round):
            inside = [rate for rate in rates if ok * TUNING.converged < rate < bad]
            if inside:
                return max(inside)
        return float(ok * (bad / ok) ** TUNING.probe)

    def success(self, now: float, seq: int, interval: float, pause_until: float) -> None:
        """A send numbered ``seq`` was answered without a refusal (``interval``: the pace now)."""
        self.streak = 0
        if seq < self.seq:
            return  # paced at an earlier rate
        self.wins += 1
        if self.bad and now - self.quiet >= TUNING.long_quiet:
            # Quiet for long: let the ceiling up, to find a tenant that left.
            self.bad *= TUNING.relax
            self.quiet = now
        rate = self.rate
        elapsed = now - self.since
        if not self.bad:
            # The opening: climb fast (a refusal costs little), but not past what a window shows.
            proven = self.wins >= TUNING.proof_sends and elapsed >= TUNING.opening_step
        else:
            # Long enough for a window to show a refusal, and the callers used the rate.
            used = self.wins >= TUNING.used * elapsed / interval
            proven = self.wins >= TUNING.proof_sends and elapsed >= TUNING.proof_time and used
        if not proven:
            return
        if rate >= self.ok:
            self.ok, self.solid = rate, bool(self.bad) or self.bucket
        following = self.next_rate()
        if following != rate:
            self.pace(following, max(now, pause_until), self.seq + self.wins)
        else:
            self.since, self.wins = now, 0

    def refused(
        self, now: float, received: float, retry: float | None, seq: int, max_pause: float
    ) -> tuple[float, float | None]:
        """A send numbered ``seq`` was refused: until when every caller pauses, and the rate to pace next.

        The rate is ``None`` when the refusal is no evidence about the pace
        (sent at an earlier rate, or the limiter had not recovered yet).
        """
        rate = following = self.rate
        self.streak += 1
        self.quiet = now
        if self.streak > 1:
            self.bucket = False  # a bucket lets the next send through after an interval
        # Evidence about the current rate: paced at it, and not a refusal that only shows
        # the limiter has not recovered from the previous one yet.
        fresh = seq >= self.seq and self.streak == 1
        if fresh:
            if rate > self.ok > 0:
                # Refused at the first send after a rise, twice: a bucket (a window refuses when
                # its quota runs out, which is rarely just then).
                first = self.wins <= TUNING.bucket_sign
                self.signs = self.signs + 1 if first else 0
                self.bucket = self.signs >= TUNING.bucket_signs
            self.bad = min(self.bad or rate, rate)
            if rate <= self.ok:
                # Refused at a proven rate: the key is busier than it was (or sends arrive with
                # more jitter), or the opening's short proof was luck (a window with quota to spare).
                self.ok = rate * TUNING.retreat if self.solid else 0.0
            # Refused at once (the rate itself is too fast, not a window run dry): the proven
            # rate still holds, so probe the next one inside the narrower bracket at once.
            at_once = self.wins <= TUNING.bucket_sign
            following = rate / TUNING.fallback
            if self.ok:
                following = self.next_rate() if at_once else self.ok
        interval = 1.0 / following
        rounded = retry is not None and whole_seconds(retry - received)
        if retry is not None and retry - now > max_pause:
            until = now + min(TUNING.probe_pause, max_pause)  # past belief: one request asks again soon
        elif retry is not None and (not rounded or not self.ok):
            until = retry  # a precise wait, or nothing proven yet: the server's word
        elif self.bucket:
            # A bucket's refusal lasts less than an interval (Retry-After rounds it up to seconds).
            until = now + interval if retry is None else min(retry, now + interval)
        else:
            # A window's refusal comes near its end: try again after a couple of intervals,
            # then twice as long each time, never past what a rounded Retry-After allows.
            until = now + min(interval * 2**self.streak, TUNING.default_pause)
            until = until if retry is None else min(until, retry)
        return min(until, now + max(max_pause, TUNING.probe_pause)), following if fresh else None

"""Every tuning constant of the pacing rules, in one frozen, documented settings object.

The learner (:mod:`._pacer`) reads them from :data:`TUNING`, one frozen
object: nothing changes them while a program runs, and each is explained
where it is declared, with its unit (seconds, a share of an interval, a
factor or a count). The admission rule's one constant (``DUE``) is stated
beside its Lua twin in :mod:`._admit`.
"""

from __future__ import annotations

import attrs

__all__ = ["TUNING", "Tuning"]


@attrs.frozen
class Tuning:
    """The pacing rules' constants (seconds, shares of an interval, factors, counts)."""

    millisecond: float = 0.001
    """The finest resolution servers write resets in: two moments this close may be one."""

    guard: float = 0.003
    """A send this long after a stated reset lands after it, despite clock jitter."""

    margin: float = 0.02
    """Sends go this share of an interval later than the learned rate allows, so that jitter on the way
    does not land one before the server's next slot.
    """

    bucket_margin: float = 0.03
    """The margin under a bucket (one of burst 1 refuses any request that arrives early)."""

    samples: int = 9
    """How many recent grants per request (a fractional reset over remaining + 1) the rate is the median
    of.
    """

    default_pause: float = 1.0
    """A refusal that names no wait pauses every caller this long (a blind one at most this long)."""

    probe_pause: float = 1.0
    """A stated wait past the budget's ``max_pause`` is not believed: the pause is this long, then one
    request asks again.
    """

    penalty_step: float = 1.03
    """An unexplained 429 slows the rate by this factor."""

    penalty_decay: float = 0.9997
    """Each success forgets this much of the slowdown (the pace settles where under 1% are refused)."""

    max_penalty: float = 4.0
    """Unexplained refusals never slow the rate more than this many times."""

    window_catchup: float = 0.15
    """Under a window, a send this share of an interval late is made up for: with the margin, no window can
    receive one request more than its share.
    """

    calm: float = 2.0
    """A first refusal after this long without one, at a known rate, is jitter at a window's edge: a pause
    of a couple of intervals, not a whole rounded second.
    """

    nudge_intervals: float = 2.0
    """The pause for such a refusal, in intervals of the known rate."""

    skew_bound: float = 2.0
    """A reset named by an epoch: the server's clock is taken to be within this of ours."""

    min_epoch_window: float = 1.0
    """A window named by an epoch reset is taken to last at least this many seconds."""

    foreign_decay: float = 0.9
    """At each new measurement, the others' measured spend (count and time) keeps this share."""

    min_share: float = 0.05
    """The rate others are measured to spend never leaves us less than this share of the key."""

    min_per_window: float = 2.5
    """Nor fewer than this many of our sends a window (so their spend stays measured)."""

    foreign_stale: float = 2.0
    """Unmeasured for this many windows, the others' spend counts half."""

    min_lag: float = 0.002
    """A 429 for a send a precise statement allowed shows our sends arrive later than they leave: at least
    this much lag is allowed for.
    """

    max_lag_share: float = 0.2
    """The lag allowed for is at most this share of an interval."""

    lag_decay: float = 0.99
    """Each success keeps this share of the lag allowed for (forgetting 1%)."""

    phase_share: float = 0.05
    """A window's end known to within this share of its length: its quota goes at its start."""

    refill_spans: float = 3.0
    """A reset later than the previous one by this many sends' worth is a window's next end, not a bucket's
    token.
    """

    alone: float = 0.05
    """Others spending less than this share of the key: the window is ours to burst into."""

    interactive_quiet: float = 10.0
    """A window's quota goes at its start (a burst) only when no interactive call came for this many
    seconds: one arriving after the quota went would wait for the next window.
    """

    burst_window: float = 2.0
    """And only into a window that ends within this many seconds."""

    first_rates: tuple[float, ...] = (1.0, 20.0)
    """Blind: the opening rate, one request per first answer's latency, is kept within these (requests a
    second).
    """

    growth: float = 2.0
    """Blind: until the first refusal, each proven rate is multiplied by this."""

    fallback: float = 1.5
    """Blind: while no rate is proven, a refused one falls back by this factor."""

    opening_step: float = 0.5
    """Blind, before the first refusal: a rate is proven by ``proof_sends`` successes over at least this
    many seconds.
    """

    roundest: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 100 / 60, 300 / 60, 1000 / 60)
    """Rates people configure, in requests a second: the roundest (so many a second or a minute), probed
    first.
    """

    round: tuple[float, ...] = (3, 4, 6, 8, 15, 25, 30, 40, 60, 75, 150, 250, 20 / 60, 30 / 60, 50 / 60)
    """The other round rates people configure (requests a second)."""

    round_converged: float = 1.2
    """A proven roundest rate with nothing refused within this ratio above it is the limit."""

    probe: float = 0.4
    """Blind: a probe goes this share of the way (in ratio) from the proven rate to the refused one."""

    converged: float = 1.05
    """Blind: a bracket this narrow (refused / proven) is converged; the proven rate holds."""

    retreat: float = 0.97
    """Blind: a refusal at a proven rate (another tenant came) drops it by this factor."""

    relax: float = 1.05
    """Blind: after a long quiet, the ceiling is let up by this factor."""

    long_quiet: float = 30.0
    """Blind: seconds without a refusal after which the ceiling is let up."""

    proof_time: float = 1.5
    """Blind, after a refusal: a rate is proven by ``proof_sends`` successes over at least this many
    seconds, the callers having used it.
    """

    proof_sends: int = 4
    """Blind: the successes that prove a rate."""

    bucket_sign: int = 0
    """Blind: a refusal after at most this many successes at a new rate came at once (the rate itself is
    too fast).
    """

    bucket_signs: int = 2
    """Blind: this many refusals at once in a row make the limiter a bucket (a window refuses when its
    quota runs out, rarely just then).
    """

    blind_margin: float = 0.01
    """Rates without fields are proven as sent: only this sliver is kept for jitter (the bucket margin for
    a bucket).
    """

    used: float = 0.8
    """Blind: the callers used a rate when at least this share of the sends it allowed went out."""

    whole: float = 1e-4
    """A wait of about a second or more within this of a whole number of seconds was rounded by the server.

    Seconds, on either side: the wait is a difference of two epoch times (about 1.7e9, good to
    2.4e-7) moved into the budget's time, so a ``Retry-After: 1`` comes out as 0.99999988 as
    often as 1.00000012; a server's own fraction of a second is milliseconds, not tenths of them.
    """


TUNING = Tuning()
"""The values the SDK paces by."""

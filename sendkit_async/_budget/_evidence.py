"""What rate-limit fields say about a key's rate: one small strategy per kind of evidence.

Headers are constraints with a known resolution, never one sample taken blindly.
Each strategy keeps what its evidence showed; the :class:`~._pacer.Learner`
feeds it the answers and combines them by one rule
(:meth:`~._pacer.Learner.key_interval`):

* :class:`Policy`: ``RateLimit-Policy`` (``q`` per ``w`` seconds) names the rate.
* :class:`PreciseResets`: a fractional reset measures it. Each answer gives
  ``reset / (remaining + 1)``, the time granted per request, and the median of
  recent ones is used, never faster than ``longest reset / limit`` (a window's
  sustained rate; while others spend from the key too, that alone, as their
  spend shrinks every sample).
* :class:`RoundedResets`: a reset in whole seconds or an epoch timestamp only
  bounds the truth, so there the rate is ``limit / window`` with the window
  estimated from what cannot be rounding or clock skew: the largest
  whole-second delay seen; for epoch resets, the gap between the reset
  moments of two requests decided less than half that gap apart (so in
  adjacent windows: one window's length) and the spread of ``reset - sent``
  once the server's clock offset is bounded (the reset is always after the
  request was decided, so ``min(reset - sent)`` bounds the offset). Windows
  named by an epoch are taken to be at least a second, and so is that of a
  bucket that has not yet run dry (its resets are all 0).

Every time here is in the budget's own time domain (see :mod:`._teach`).
"""

from __future__ import annotations

import statistics

import attrs

from ._protocol import NEVER
from ._tuning import TUNING

__all__ = ["Policy", "PreciseResets", "RoundedResets"]


@attrs.define
class Policy:
    """The rate a ``RateLimit-Policy`` names."""

    seconds: float = 0.0  # per request (0: no policy named)

    def note(self, limit: int, window: float | None) -> None:
        """A policy of ``limit`` requests per ``window`` seconds was named (``None``: none was)."""
        if window is not None and window > 0:
            self.seconds = window / limit


@attrs.define
class PreciseResets:
    """What fractional resets measured: the time granted per request, and the longest reset."""

    samples: list[float] = attrs.Factory(list)
    longest: float = 0.0
    end_lo: float = NEVER  # the latest window's end: no earlier than this...
    end_hi: float = -NEVER  # ...and no later than this

    def note(self, sent: float, remaining: int, reset: float) -> None:
        """A granted request decided at ``sent`` had ``remaining`` left until ``reset``."""
        span = reset - sent
        self.samples = [*self.samples[-(TUNING.samples - 1) :], span / (remaining + 1)]
        self.longest = max(self.longest, span)

    def bound_end(self, reset: float, late: float) -> None:
        """Narrow where the window's end lies: ``reset`` counted from the send, up to ``late`` after.

        The server stamped its reset somewhere between the send and the
        answer's arrival (``late`` later), so the true end lies in
        ``[reset, reset + late]``; answers of one window intersect their
        ranges, a range past the current one starts the next window, and
        one before it is a late answer of an old window.
        """
        low, high = reset, reset + max(late, 0.0)
        if high < self.end_lo:
            return
        if low > self.end_hi:
            self.end_lo, self.end_hi = low, high
        else:
            self.end_lo, self.end_hi = max(self.end_lo, low), min(self.end_hi, high)

    def end(self, period: float) -> float | None:
        """The latest window's end, at its latest, when the answers pin it to within 5% of ``period``."""
        if self.end_hi - self.end_lo > TUNING.phase_share * period:
            return None
        return self.end_hi

    def window(self) -> float:
        """The window: a bucket with tokens to spare answers "reset 0"; until it runs dry, a second."""
        return max(self.longest, 1.0)

    def interval(self, limit: int, foreign_rate: float) -> float:
        """Seconds per request the key sustains, as measured (0: nothing measured yet)."""
        if not self.samples:
            return 0.0
        if limit and foreign_rate:
            # Others' spend shrinks every sample; the window's own length does not change.
            return self.longest / limit
        base = statistics.median(self.samples)
        return max(base, self.longest / limit) if limit else base


@attrs.define
class RoundedResets:
    """What resets rounded to whole seconds, or stated as epoch moments, bound about the window."""

    max_delay: float = 0.0  # the largest whole-second reset delay seen
    span_max: float = NEVER  # epoch resets: max(reset - sent)
    offset_hi: float = -NEVER  # epoch resets: min(reset - sent) bounds the server's clock offset
    gap: float = 0.0  # epoch resets: the smallest gap between two distinct reset moments
    last_epoch: float = NEVER
    last_epoch_sent: float = NEVER

    def note_whole(self, sent: float, reset: float) -> None:
        """A reset in whole seconds from the decision at ``sent``."""
        self.max_delay = max(self.max_delay, round(reset - sent))

    def note_epoch(self, sent: float, reset: float, resolution: float) -> None:
        """A reset stated as a moment on the server's clock, for the request decided at ``sent``."""
        delay = reset - sent
        self.span_max = max(self.span_max, delay)
        self.offset_hi = min(self.offset_hi, delay)
        gap = abs(reset - self.last_epoch)
        # Two requests decided less than half the gap apart lie in adjacent
        # windows, so the gap is one window (not several, skipped while idle).
        if gap > max(resolution, TUNING.millisecond) / 2 and abs(sent - self.last_epoch_sent) < gap / 2:
            self.gap = gap if not self.gap else min(self.gap, gap)
        self.last_epoch, self.last_epoch_sent = reset, sent

    def whole_window(self) -> float:
        """The window whole-second resets show: the longest delay, at least a second."""
        return max(self.max_delay, 1.0)

    def epoch_window(self) -> float:
        """The window epoch resets show: their gaps, and their spread once the clock offset is bounded."""
        spread = self.span_max - max(self.offset_hi, 0.0)
        return max(TUNING.min_epoch_window, self.gap, spread, self.span_max - TUNING.skew_bound)

    def epoch_end(self, period: float, reset: float) -> float | None:
        """When the window stated as ending at epoch ``reset`` ends in our time, if known to 5% of it.

        ``reset - sent`` is at most the offset, and at least the offset less
        a window: samples from both ends of windows close the gap.
        """
        offset_lo = self.span_max - period  # a reset is at most a window after its decision
        if self.offset_hi - offset_lo > TUNING.phase_share * period:
            return None
        return reset - offset_lo

"""What a refusal with rate-limit fields says: how long every caller pauses, and how much slower to go.

A 429 pauses every caller: until its precise reset; or, at a known rate, for
one interval when it comes from a bucket (no countdown seen: its refusal
lasts less than that) and for two when it is a window's first in a while
(jitter at its edge); or else until ``Retry-After``. Each unexplained refusal
slows the rate 3% (forgotten 0.03% a success, so the pace settles where fewer
than 1% of requests are refused); one that came before a precise reset
widens the lag sends keep after resets instead.

Refusals without any fields are the blind bracket's (:mod:`._bracket`).
"""

from __future__ import annotations

import attrs

from ._protocol import NEVER
from ._tuning import TUNING

__all__ = ["Refusals"]


@attrs.define
class Refusals:
    """What the refusals so far taught: a slowdown, a lag after resets, and when the latest came."""

    penalty: float = 1.0  # the factor intervals are slowed by
    lag: float = 0.0  # how long after a precise reset sends wait (one came early)
    last: float = NEVER  # when the latest refusal arrived

    def success(self) -> None:
        """A send was granted: the slowdown and the lag fade."""
        self.penalty = max(self.penalty * TUNING.penalty_decay, 1.0)
        self.lag *= TUNING.lag_decay

    def refused(
        self,
        now: float,
        *,
        sent: float,
        reset: float | None,
        retry: float | None,
        precise: bool,
        interval: float,
        countdown: bool,
        max_pause: float,
    ) -> float:
        """A send that left at ``sent`` was refused at ``now``: until when every caller pauses.

        ``reset`` and ``retry`` are the answer's moments, ``precise`` whether
        its reset is fractional, ``interval`` the pace now (0: unknown) and
        ``countdown`` whether the limiter showed a window. A wait longer than
        ``max_pause`` is past belief: one request asks again soon, and
        nothing is learned.
        """
        calm = now - self.last >= TUNING.calm
        if precise and reset is not None and (retry is None or reset - TUNING.guard <= retry + TUNING.guard):
            # A Retry-After that is a precise reset rounded up: trust the reset.
            until = max(reset + TUNING.guard + self.lag, now)
        elif retry is not None and interval and not countdown:
            until = min(retry, now + interval)  # a bucket's refusal lasts less than an interval
        elif retry is not None and interval and calm:
            # A window's first refusal in a while at a known rate: jitter at its edge.
            until = min(retry, now + TUNING.nudge_intervals * interval)
        elif retry is not None:
            until = retry
        else:
            until = now + TUNING.default_pause
        wait = until - now
        usable = wait <= max_pause
        if not usable:
            wait = min(TUNING.probe_pause, max_pause)
        self.last = now
        if usable and precise and reset is not None:
            early = max(reset - sent, 0.0)
            self.lag = min(
                max(self.lag, early + TUNING.guard, TUNING.min_lag), TUNING.max_lag_share * interval
            )
        elif usable:
            self.penalty = min(self.penalty * TUNING.penalty_step, TUNING.max_penalty)
        return now + wait

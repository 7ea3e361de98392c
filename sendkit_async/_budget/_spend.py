"""Who spends a key: the latest statement of what is left, and what others spend beside us.

* :class:`Statement`: the newest answer's ``Remaining`` and reset. Once our
  sends since it use up its ``remaining`` (less what others spend
  meanwhile), the next waits for that reset (admission enforces it).
* :class:`Others`: two answers of the same window (the same epoch reset, or a
  countdown consistent with our sends) show how much more than our own sends
  the key spent between them; that foreign rate is taken off the key's,
  never leaving fewer than 2.5 of our sends a window (so it stays measured),
  and it halves every two windows in which it is not measured again.
"""

from __future__ import annotations

import attrs

from ._protocol import NEVER
from ._tuning import TUNING

__all__ = ["Others", "Statement"]


@attrs.frozen
class Statement:
    """The newest answer's word: ``remaining`` sends after the one numbered ``seq`` until ``reset``."""

    seq: int = -1  # -1: no statement yet
    sent: float = NEVER
    remaining: int = -1
    reset: float = NEVER


@attrs.define
class Others:
    """Requests other clients spent from the key, decayed over the time they were measured in."""

    count: float = 0.0
    time: float = 0.0
    last: float = NEVER  # when they were last measured (or their evidence last halved)

    @property
    def rate(self) -> float:
        """Requests per second others spend, as far as the answers show."""
        return self.count / self.time if self.time > 0 else 0.0

    def measure(self, sent: float, spent: int, elapsed: float) -> None:
        """Between two statements ``elapsed`` apart, others spent ``spent`` (negative: none)."""
        self.last = sent
        self.count = self.count * TUNING.foreign_decay + max(spent, 0)
        self.time = self.time * TUNING.foreign_decay + elapsed

    def fade(self, sent: float, window: float) -> None:
        """No measurement this time: evidence not renewed for two windows is halved."""
        if sent - self.last > TUNING.foreign_stale * max(window, 1.0):
            self.count /= 2
            self.last = sent

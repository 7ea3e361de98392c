"""The generic cell rate algorithm: the one pacing rule under every part of the budget.

A send is due at its key's theoretical arrival time (``tat``) less the
burst ``tolerance``, and books the next one an ``interval`` after the later
of ``tat`` and its own departure less ``catchup`` (so a caller woken a little
late does not push back every later send, and one woken very late never
lets the next go early). :class:`~._cap.RateCap` applies it with a burst
tolerance and no catch-up; the admission rule (:mod:`._admit`) with the
plan's catch-up and no tolerance; ``budget.lua`` states the same two lines
for the Redis budget, and ``tests/test_admission.py`` holds them in step.
"""

from __future__ import annotations

__all__ = ["booked", "due"]


def due(tat: float, now: float, tolerance: float = 0.0) -> float:
    """The earliest a send may leave: ``tat`` less the burst tolerance, and never before ``now``."""
    return max(now, tat - tolerance)


def booked(tat: float, at: float, interval: float, catchup: float = 0.0) -> float:
    """The next ``tat`` once a send leaves at ``at``: one interval after it (or after ``tat``, if later)."""
    return max(tat, at - catchup) + interval

"""The rate-limit fields of one answer, as a plain value (a leaf: it imports nothing of the SDK)."""

from __future__ import annotations

import attrs

__all__ = ["RateLimit", "Window"]


@attrs.frozen
class Window:
    """One of several windows an answer names at once (Kong's per second and per minute, say).

    Attributes:
        limit: requests allowed per window.
        remaining: requests left in it.
        seconds: its length.
        reset_after: seconds from the answer until it resets, when known.
    """

    limit: int
    remaining: int
    seconds: float
    reset_after: float | None = None


@attrs.frozen
class RateLimit:
    """The rate-limit headers of one answer.

    Attributes:
        limit: requests allowed per window (a token bucket's burst size).
        remaining: requests left in the current window.
        reset_after: seconds from ``observed_at`` until the window resets (or,
            for a token bucket, until the next request is allowed).
        observed_at: when the answer arrived, on the client's monotonic clock.
        window: the policy window in seconds, when the server names it
            (IETF ``RateLimit-Policy: ...;w=``).
        reset_resolution: the granularity of the reset as sent: 1.0 for whole
            seconds (or a whole epoch second), 0.001 for epoch milliseconds, 0
            for a fractional delay.
        reset_epoch: the reset as the server's epoch timestamp, when it sent one
            (it carries the server's clock, which may differ from ours).
        windows: every window, shortest first, when the answer names several
            (the other fields then describe the shortest).
        blocked_after: seconds from ``observed_at`` until a longer window that
            has nothing left resets (no request passes before), if one has none.
    """

    limit: int | None
    remaining: int | None
    reset_after: float | None
    observed_at: float
    window: float | None = None
    reset_resolution: float = 0.0
    reset_epoch: float | None = None
    windows: tuple[Window, ...] = ()
    blocked_after: float | None = None

    @property
    def resets_at(self) -> float | None:
        """The reset moment on the client's monotonic clock."""
        return None if self.reset_after is None else self.observed_at + self.reset_after

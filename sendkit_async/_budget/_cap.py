"""A caller's own ceiling in front of a budget: at most ``rate`` permits per second."""

from __future__ import annotations

import math

from sendkit_async._clock import Clock
from sendkit_async._errors import ValidationError

from ._gcra import booked, due
from ._protocol import BudgetSnapshot, Lane, Observation, Permit, RateBudget

__all__ = ["RateCap"]


class RateCap:
    """At most ``rate`` acquisitions per second (bursts up to ``capacity``), then the inner budget.

    A bulk job with ``max_rate`` wraps the client's budget in one, so the job
    stays under its own ceiling while every answer still informs the shared
    budget.

    Raises:
        ValidationError: a rate or capacity that is not positive.
    """

    __slots__ = ("_clock", "_inner", "_interval", "_tat", "_tolerance")

    def __init__(self, inner: RateBudget, rate: float, *, clock: Clock, capacity: int = 1) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValidationError(f"rate must be a positive number, got {rate!r}")
        if capacity < 1:
            raise ValidationError(f"capacity must be at least 1, got {capacity!r}")
        self._inner = inner
        self._clock = clock
        self._interval = 1.0 / rate
        self._tolerance = (capacity - 1) * self._interval
        self._tat = -math.inf  # the generic cell rate algorithm's "theoretical arrival time"

    def bind(self, key_id: str) -> None:
        """Pass the key's fingerprint on to the inner budget."""
        self._inner.bind(key_id)

    async def acquire(self, lane: Lane = Lane.INTERACTIVE) -> Permit:
        """Wait for a token of this cap, then for the inner budget.

        The token is taken only when it is due (no await between the check
        and the take), so a caller cancelled while it waits costs the others
        nothing; one cancelled in the inner budget gives its token back when
        nobody took a later one.
        """
        while True:
            now = self._clock.monotonic()
            slot = due(self._tat, now, self._tolerance)
            if slot <= now:
                break
            await self._clock.sleep(slot - now)
        taken = self._tat = booked(self._tat, now, self._interval)
        try:
            return await self._inner.acquire(lane)
        except BaseException:
            if self._tat == taken:  # the latest token: nobody waits behind it yet
                self._tat -= self._interval
            raise

    async def observe(self, permit: Permit, observation: Observation) -> None:
        """Pass the answer on to the inner budget."""
        await self._inner.observe(permit, observation)

    def snapshot(self) -> BudgetSnapshot:
        """The inner budget's state."""
        return self._inner.snapshot()

"""How many requests a bulk helper keeps in flight: a fixed cap, or one that follows the server.

Throughput is the rate times nothing else only while enough requests are in
flight: by Little's law, in flight = rate x latency. The rate budget decides
*when* each request may leave; an :class:`InFlight` limit decides how many
may be out at once (and so how many batch bodies are held in memory).

* :class:`FixedLimit` is ``concurrency=N``: at most N, always.
* :class:`AdaptiveLimit` is ``concurrency="auto"``. It allows about the rate
  the budget allows times the latency it observes, with headroom, so that the
  budget, not the cap, is what holds requests back. It shrinks when latency
  climbs as in flight rises (the server saturating: a gradient rule, as in
  Netflix's concurrency-limits) and on timeouts, 5xx gateway answers and
  connection errors, and it never exceeds ``max_limit``.

Bulk helpers take a :meth:`~InFlight.slot` around each call; the session
reports each attempt's latency with :meth:`~InFlight.observe`.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Final, Literal, Protocol, TypeAlias

import anyio

from ._clock import Clock
from ._config import DEFAULT_MAX_CONCURRENCY
from ._errors import ValidationError

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "AdaptiveLimit",
    "Concurrency",
    "FixedLimit",
    "InFlight",
    "check_concurrency",
]

Concurrency: TypeAlias = "int | Literal['auto']"

# In flight allowed = rate x latency x HEADROOM + 1: room for the client's own
# gaps (a send that leaves late, an answer read late) on top of Little's law.
HEADROOM: Final = 1.25
# Latency up to TOLERANCE x its unloaded value is noise; past it, the server
# is queueing our requests and in flight shrinks (1.3: a server of capacity c
# settles near 1.3 c, so a call arriving behind them waits about a third of a
# service time in its queue).
TOLERANCE: Final = 1.3
# The unloaded latency is the least seen, forgotten by this factor per answer
# (1.0001: +10% after ~1,000 answers) so that a server that slows for good is
# followed, while a saturated one cannot talk us into queueing more.
FORGET: Final = 1.0001
# A cut keeps at least this share of the in flight it cuts (at most halving),
# and a failure (timeout, 502/503/504, no answer) keeps this share.
MAX_CUT: Final = 0.5
FAILURE_CUT: Final = 0.75
SMOOTHING: Final = 0.25
FAILURE_STATUSES: Final = frozenset({502, 503, 504})


def check_concurrency(value: object, name: str = "concurrency") -> Concurrency:
    """``"auto"`` or a whole number of at least 1.

    Raises:
        ValidationError: anything else.
    """
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValidationError(f"{name} must be 'auto' or a whole number of at least 1, got {value!r}")


class InFlight(Protocol):
    """A cap on requests in flight that bulk helpers wait on and the session reports to."""

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        ...

    @property
    def in_flight(self) -> int:
        """Slots held now."""
        ...

    def slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one of the ``limit`` slots for one call (its retries included)."""
        ...

    def observe(self, *, latency: float, size: int, failed: bool) -> None:
        """Learn from one attempt: seconds from send to answer, its body's bytes, and whether it failed."""
        ...


class _Slots:
    """Slots handed out in arrival order up to a limit that may move."""

    def __init__(self) -> None:
        self._held = 0
        self._waiters: deque[anyio.Event] = deque()

    @property
    def in_flight(self) -> int:
        return self._held

    def _current(self) -> int:
        raise NotImplementedError

    @property
    def limit(self) -> int:
        return self._current()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._held >= self._current() or self._waiters:
            event = anyio.Event()
            self._waiters.append(event)
            try:
                while True:
                    await event.wait()
                    if self._held < self._current():
                        break
                    event = anyio.Event()  # woken, but the limit fell meanwhile: queue again, first
                    self._waiters.appendleft(event)
            except BaseException:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(event)
                self.wake()  # a woken waiter that leaves passes its turn on
                raise
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            self.wake()

    def wake(self) -> None:
        """Let waiters in while slots are free."""
        free = self._current() - self._held
        while free > 0 and self._waiters:
            self._waiters.popleft().set()
            free -= 1


class FixedLimit(_Slots):
    """``concurrency=N``: at most ``N`` in flight, whatever the server does."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def _current(self) -> int:
        return self._limit

    def observe(self, *, latency: float, size: int, failed: bool) -> None:
        """A fixed cap learns nothing."""

    def __repr__(self) -> str:
        return f"FixedLimit({self._limit}, in_flight={self.in_flight})"


class AdaptiveLimit(_Slots):
    """``concurrency="auto"``: about rate x latency in flight, less when the server queues.

    Args:
        clock: the clock the cuts are spaced by (one per observed latency at most).
        rate: the requests per second the budget allows now, or ``None``
            when it does not know (then only the server's latency bounds in flight).
        max_limit: never more than this in flight.

    Until the first answer there is no latency to go by: requests go out as
    the budget lets them, up to ``max_limit``. Answers are compared only with
    others of a similar size (a power of two of body bytes), so a small last
    batch is not mistaken for the server speeding up.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        rate: Callable[[], float | None],
        max_limit: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._rate = rate
        self.max_limit = max_limit
        self._ceiling = float(max_limit)  # what the server's latency allows
        self._unloaded: dict[int, float] = {}
        self._latency = 0.0  # smoothed, all sizes
        self._ratio = 1.0  # smoothed latency / unloaded latency
        self._changed = -math.inf

    def _current(self) -> int:
        ceiling = min(self.max_limit, max(1, int(self._ceiling)))
        rate = self._rate()
        if not self._latency or rate is None:
            return ceiling
        little = math.ceil(rate * self._latency * HEADROOM) + 1
        return max(1, min(ceiling, little))

    def observe(self, *, latency: float, size: int, failed: bool) -> None:
        """Learn from one attempt; a larger limit lets waiters in at once."""
        now = self._clock.monotonic()
        spaced = now - self._changed >= self._latency
        if failed:
            if spaced:
                self._cut(FAILURE_CUT, now)
            return
        bucket = size.bit_length()
        unloaded = min(self._unloaded.get(bucket, latency) * FORGET, latency)
        self._unloaded[bucket] = unloaded
        ratio = latency / unloaded if unloaded > 0 else 1.0
        first = not self._latency
        self._latency = latency if first else self._latency + SMOOTHING * (latency - self._latency)
        self._ratio = ratio if first else self._ratio + SMOOTHING * (ratio - self._ratio)
        if self._ratio > TOLERANCE:
            if spaced:
                self._cut(max(MAX_CUT, TOLERANCE / self._ratio), now)
        elif self._ratio <= (1 + TOLERANCE) / 2 and self._ceiling < self.max_limit:
            # Recover by about one per round trip: each answer adds 1/limit.
            self._ceiling = min(float(self.max_limit), self._ceiling + 1 / max(self._ceiling, 1.0))
        self.wake()

    def _cut(self, keep: float, now: float) -> None:
        base = min(float(self._current()), float(max(self.in_flight, 1)))
        self._ceiling = max(1.0, base * keep)
        self._changed = now

    def __repr__(self) -> str:
        return f"AdaptiveLimit(limit={self.limit}, in_flight={self.in_flight}, max_limit={self.max_limit})"

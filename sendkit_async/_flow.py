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

Bulk helpers take a :meth:`~InFlight.slot` around each call (through
:func:`sendkit_async._fanout.fan_out`); as a hook of the session
(:mod:`._hooks`), a limit hears when each attempt leaves and how it ended.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final, Literal, Protocol, TypeAlias

import anyio

from ._clock import Clock
from ._config import DEFAULT_MAX_CONCURRENCY, MAX_CONCURRENCY
from ._errors import ValidationError
from ._hooks import Attempt

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
# Latency up to TOLERANCE x its unloaded value is noise; past it (in the smoothed
# ratio too, so one slow answer is not a trend), the server is queueing our
# requests and in flight shrinks (1.5: a busy 2-core host's noise at a few in
# flight reaches 1.4; a server of capacity c settles near 1.5 c, so a call
# arriving behind them waits half a service time in its queue).
TOLERANCE: Final = 1.5
# A cut for latency that leaves latency above this share of what it was is not
# a queue of ours: the host is noisy; the cut is undone and the latency kept as normal.
UNMOVED: Final = 0.9
# The unloaded latency is the least seen, forgotten by this factor per answer
# (1.0001: +10% after ~1,000 answers) so that a server that slows for good is
# followed, while a saturated one cannot talk us into queueing more.
FORGET: Final = 1.0001
# A failure (timeout, 502/503/504, no answer) keeps this share of the in flight it met.
FAILURE_CUT: Final = 0.75
SMOOTHING: Final = 0.25
# Latencies below this are all "fast": a millisecond's jitter on a loopback
# server is not a queue.
LATENCY_FLOOR: Final = 0.02
FAILURE_STATUSES: Final = frozenset({502, 503, 504})


def check_concurrency(value: object, name: str = "concurrency") -> Concurrency:
    """``"auto"`` or a whole number from 1 to ``MAX_CONCURRENCY`` (1,000).

    Raises:
        ValidationError: anything else.
    """
    if value == "auto" or (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CONCURRENCY
    ):
        return value
    raise ValidationError(
        f"{name} must be 'auto' or a whole number from 1 to {MAX_CONCURRENCY:,}, got {value!r:.40}"
    )


class InFlight(Protocol):
    """A cap on requests in flight that bulk helpers wait on, and a hook of the session's attempts."""

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        ...

    @property
    def max_limit(self) -> int:
        """The most it may ever allow (how many workers a fan-out needs)."""
        ...

    @property
    def in_flight(self) -> int:
        """Slots held now."""
        ...

    def slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one of the ``limit`` slots for one call (its retries included)."""
        ...

    def attempt(self, attempt: Attempt) -> contextlib.AbstractContextManager[None]:
        """Around one attempt: it leaves (its budget permit granted), then ends answered or cut short."""
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

    @property
    def max_limit(self) -> int:
        """A fixed cap never moves."""
        return self._limit

    @contextlib.contextmanager
    def attempt(self, attempt: Attempt) -> Iterator[None]:  # noqa: ARG002 - the hook's signature
        """A fixed cap learns nothing."""
        yield

    def __repr__(self) -> str:
        return f"FixedLimit({self._limit}, in_flight={self.in_flight})"


class AdaptiveLimit(_Slots):
    """``concurrency="auto"``: about rate x latency in flight, less when the server queues.

    Args:
        clock: the clock latencies are measured on.
        rate: the requests per second the budget allows now and how many it
            lets go at once, or ``None`` when it does not know (then only the
            server's latency bounds in flight).
        max_limit: never more than this in flight.

    The latency it goes by is the smoothed latency of answers, or the age of
    the oldest request still out when that is longer: before the first
    answer, in flight may grow as the budget sends (rate x time waited so
    far, with headroom), and a server that stops answering shows at once.

    Latency past ``TOLERANCE`` x the unloaded latency (the least seen for
    bodies of that size, a power of two of bytes, so a small last batch is
    not mistaken for the server speeding up) means the server queues: in
    flight is cut to ``TOLERANCE`` x what the server served at once while
    that request was out (``in flight x unloaded / latency``), then left alone until
    requests sent after the cut answer, so one queue is not cut for twice. If
    the first of them is no faster (latency at 90% or more of what it was),
    the queue was not ours but a noisy host's: the cut is undone and that
    latency becomes the normal one.
    Timeouts, 502-504s and lost connections cut to 3/4 the same way.
    Answers within the noise win back about one slot per round trip.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        rate: Callable[[], tuple[float, int] | None],
        max_limit: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._rate = rate
        self.max_limit = max_limit
        self._ceiling = float(max_limit)  # what the server's latency allows
        self._unloaded: dict[int, float] = {}
        self._latency = 0.0  # smoothed, all sizes
        self._ratio = 1.0  # smoothed latency / unloaded latency, since the last change
        self._changed = -math.inf
        self._cut_ratio = 0.0  # the latency ratio of the latest cut for latency, until it is judged
        self._before_cut = float(max_limit)
        self._cut_latency = 0.0
        self._out: dict[Attempt, tuple[float, int]] = {}  # attempt -> (sent at, in flight then)

    def _current(self) -> int:
        ceiling = min(self.max_limit, max(1, int(self._ceiling)))
        allowed = self._rate()
        if allowed is None:
            # Nothing heard yet: two, as the budget lets one out; afterwards a
            # budget with no rate (a server that sends no headers) paces alone.
            return ceiling if self._latency else min(ceiling, 2)
        rate, burst = allowed
        # Before the first answer, one more: a caller always waits in the
        # budget, so each send (an event that re-reads the limit) comes on time.
        spare = 1 if self._latency else 2
        little = math.ceil(rate * max(self._latency, self._oldest()) * HEADROOM) + spare
        if burst > 1:  # a window's quota goes at once: room for all of it
            little = max(little, burst + spare)
        return max(1, min(ceiling, little))

    def _oldest(self) -> float:
        if not self._out:
            return 0.0
        return self._clock.monotonic() - min(sent for sent, _ in self._out.values())

    @contextlib.contextmanager
    def attempt(self, attempt: Attempt) -> Iterator[None]:
        """Note the attempt leaving, then learn from how it ended (a cancelled one teaches nothing).

        A longer wait for the oldest answer may let others in meanwhile.
        """
        self._out[attempt] = (self._clock.monotonic(), len(self._out) + 1)
        self.wake()
        try:
            yield
        except BaseException:
            self._out.pop(attempt, None)
            self.wake()
            raise
        if attempt.refused:  # a limiter's refusal (429, or its 503): answered at the edge, at once
            self._out.pop(attempt, None)
            self.wake()
            return
        self.answered(attempt, size=attempt.size, status=attempt.status if attempt.answered else None)

    def answered(self, attempt: Attempt, *, size: int, status: int | None) -> None:
        """Learn from one attempt; a larger limit lets waiters in at once.

        Only a success measures the server's service time: a 429 or a 4xx
        is answered at its edge, fast, whatever the server's load.
        """
        sent_at, load = self._out.pop(attempt, (self._clock.monotonic(), 1))
        load = max(load, len(self._out) + 1)  # what was out with it, at its start or its end
        now = self._clock.monotonic()
        fresh = sent_at >= self._changed  # sent after the last change: it shows its effect
        if status is None or status in FAILURE_STATUSES:
            if fresh:
                self._cut(load * FAILURE_CUT, now)
            self.wake()
            return
        if not 200 <= status < 300:  # noqa: PLR2004
            self.wake()
            return
        latency = now - sent_at
        bucket = size.bit_length()
        unloaded = min(self._unloaded.get(bucket, latency) * FORGET, latency)
        self._unloaded[bucket] = unloaded
        ratio = max(latency, LATENCY_FLOOR) / max(unloaded, LATENCY_FLOOR)
        self._latency = (
            latency if not self._latency else self._latency + SMOOTHING * (latency - self._latency)
        )
        if self._cut_ratio and sent_at >= self._changed + self._cut_latency:
            # The first request sent once the cut's queue had time to drain: did the cut help?
            if ratio >= UNMOVED * self._cut_ratio:
                self._ceiling = self._before_cut
                self._unloaded[bucket] = latency / ((1 + TOLERANCE) / 2)
                ratio = (1 + TOLERANCE) / 2
            self._cut_ratio = 0.0
        if fresh:
            self._ratio += SMOOTHING * (ratio - self._ratio)
            if ratio > TOLERANCE and self._ratio > TOLERANCE:
                before = self._ceiling
                self._cut(load * TOLERANCE / ratio, now)
                self._cut_ratio, self._before_cut, self._cut_latency = ratio, before, latency
            elif self._ratio <= (1 + TOLERANCE) / 2 and self._ceiling < self.max_limit:
                # Win back about one per round trip: each answer adds 1/limit.
                self._ceiling = min(float(self.max_limit), self._ceiling + 1 / max(self._ceiling, 1.0))
        self.wake()

    def _cut(self, target: float, now: float) -> None:
        self._ceiling = max(1.0, min(self._ceiling, float(self._current()), target))
        self._changed = now
        self._ratio = 1.0

    def __repr__(self) -> str:
        return f"AdaptiveLimit(limit={self.limit}, in_flight={self.in_flight}, max_limit={self.max_limit})"

"""What the session and a rate budget say to each other: one Protocol and its plain values.

Every value is plain data with times in seconds since the epoch, so that a
budget living in another process (or in Redis) can use an observation made
here.
"""

from __future__ import annotations

import enum
from typing import Protocol

import attrs

from sendkit_async._errors import ConfigurationError
from sendkit_async._rate import RateLimit

RATE_LIMITED = 429
NEVER = -1e18  # a moment before any other: a time field not set yet

__all__ = ["BudgetSnapshot", "Lane", "Observation", "Permit", "RateBudget", "Shape", "refuse_second_key"]


class Lane(enum.IntEnum):
    """Who is waiting: interactive single calls go ahead of bulk batches.

    Every call through the client's facade is ``INTERACTIVE`` unless the
    session says otherwise; the bulk engine, the chunked inbox calls and
    ``update_many`` send on ``BULK``. Pick a lane yourself with
    ``client.with_options(lane=Lane.BULK)``.
    """

    INTERACTIVE = 0
    BULK = 1


class Shape(enum.Enum):
    """The limiter shape a budget believes the server runs."""

    UNKNOWN = "unknown"  # nothing answered yet
    HEADERS = "headers"  # the answers carry rate-limit fields
    BLIND = "blind"  # answers carry none: learned from 429s alone


@attrs.frozen
class Permit:
    """Leave to send one attempt, handed back to :meth:`RateBudget.observe` with its answer.

    Attributes:
        lane: the lane it was granted on.
        token: identifies the grant to the budget that made it.
        granted_at: when it was granted, in seconds since the epoch.
    """

    lane: Lane
    token: int
    granted_at: float


@attrs.frozen
class Observation:
    """How one attempt ended, as plain values.

    Attributes:
        status: the HTTP status, ``None`` when no answer came (dropped, timed out, cancelled).
        sent_at: when the request left, in seconds since the epoch.
        received_at: when the answer (or the failure) arrived, in seconds since the epoch.
        limit: the answer's limit field (requests per window, or a bucket's burst).
        remaining: requests the server still allows now.
        reset_at: when the server says its budget returns, in seconds since the
            epoch (a relative reset counted from ``sent_at``; an epoch reset as
            the server sent it, on the server's clock).
        reset_resolution: the granularity of that reset as sent: 1.0 when the
            server sends whole seconds (or a whole epoch second), 0.001 for
            epoch milliseconds, 0 for a fractional delay.
        window: the policy window in seconds, when the server names it
            (IETF ``RateLimit-Policy: ...;w=``).
        retry_at: when ``Retry-After`` (or a wait the body names) expires, in
            seconds since the epoch.
        reset_server: whether ``reset_at`` is the server's own timestamp (so
            it carries the server's clock offset from ours).
        refused: the answer was a rate limiter's refusal: every 429, and a 503
            or 403 the session found to behave like one (see ``_throttle``).
        blocked_until: when a longer window that has nothing left resets (an
            answer naming several windows), in seconds since the epoch.
    """

    status: int | None
    sent_at: float
    received_at: float
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None
    reset_resolution: float = 0.0
    window: float | None = None
    retry_at: float | None = None
    reset_server: bool = False
    refused: bool = attrs.field(
        default=attrs.Factory(lambda self: self.status == RATE_LIMITED, takes_self=True), kw_only=True
    )
    blocked_until: float | None = attrs.field(default=None, kw_only=True)

    @classmethod
    def of(
        cls,
        status: int | None,
        *,
        sent_at: float,
        received_at: float,
        rate: RateLimit | None = None,
        retry_after: float | None = None,
        refused: bool = False,
    ) -> Observation:
        """Build one from an answer's parsed fields (delays become epoch times).

        A rate limiter decides, and stamps its fields, when the request
        arrives, so a relative reset counts from when the request left
        (a budget that finds the server stamping later learns so from a 429);
        ``Retry-After`` counts from the answer's arrival.
        """
        if rate is None:
            return cls(
                status,
                sent_at,
                received_at,
                retry_at=_at(received_at, retry_after),
                refused=refused or status == RATE_LIMITED,
            )
        epoch = rate.reset_epoch
        return cls(
            status,
            sent_at,
            received_at,
            limit=rate.limit,
            remaining=rate.remaining,
            reset_at=_at(sent_at, rate.reset_after) if epoch is None else epoch,
            reset_resolution=rate.reset_resolution,
            window=rate.window,
            retry_at=_at(received_at, retry_after),
            reset_server=epoch is not None,
            refused=refused or status == RATE_LIMITED,
            blocked_until=_at(sent_at, rate.blocked_after),
        )


def refuse_second_key(bound: str | None, key_id: str) -> None:
    """A budget paces one key: binding it to a second, different one is a mistake, refused.

    Raises:
        ConfigurationError: naming the fix (never a key or its fingerprint).
    """
    if bound is not None and bound != key_id:
        raise ConfigurationError(
            "this rate budget already paces another API key; each key has its own limit, so give each "
            "key (each client of a workspace) its own budget: one Redis client can back many RedisBudgets"
        )


def _at(moment: float, delay: float | None) -> float | None:
    return None if delay is None else moment + delay


@attrs.frozen
class BudgetSnapshot:
    """A budget's state at one moment, for logs, dashboards and tracing.

    Attributes:
        shape: what the budget has learned about the server's limiter.
        limit: the latest limit the server sent.
        remaining: the server's latest ``Remaining`` less this client's sends since.
        interval: seconds between sends at the learned sustainable rate (0 when unpaced).
        paused_for: seconds left of a shared pause after a 429 (0 when none).
        waiting: callers waiting for a permit.
        in_flight: permits granted and not yet observed.
        in_flight_limit: the client's adaptive in-flight limit (filled in by
            :meth:`SendKit.budget_snapshot`; ``None`` from the budget itself).
        burst: sends the budget lets go at once (a fixed window's quota at its
            start; 1 while it spreads them).
    """

    shape: Shape
    limit: int | None
    remaining: int | None
    interval: float
    paused_for: float
    waiting: int
    in_flight: int
    in_flight_limit: int | None = None
    burst: int = 1


class RateBudget(Protocol):
    """The rate budget of one API key, asked before every attempt and told every answer.

    The session calls :meth:`acquire` before each attempt of each call (first
    tries and retries alike) and :meth:`observe` once for each permit, with
    the answer, a 429, or a transport failure (``status=None``). A budget must
    pause every caller after a 429 (for as long as the answer's fields say the
    refusal lasts: a ``Retry-After`` in whole seconds bounds that from above),
    let cancellation through while waiting, and never raise from :meth:`observe`.
    """

    def bind(self, key_id: str) -> None:
        """Learn which key it paces: the client calls it once, with a fingerprint, never the key.

        A budget shared between processes keeps one state per ``key_id``.
        A budget paces one key: a second, different ``key_id`` raises
        :class:`ConfigurationError` (one Redis client can back a budget per key).
        """
        ...

    async def acquire(self, lane: Lane) -> Permit:
        """Wait until this caller may send, and return its permit."""
        ...

    async def observe(self, permit: Permit, observation: Observation) -> None:
        """Learn from how the attempt sent under ``permit`` ended."""
        ...

    def snapshot(self) -> BudgetSnapshot:
        """The budget's state now."""
        ...

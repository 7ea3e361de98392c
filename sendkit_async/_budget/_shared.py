"""One key's budget state in Redis: its keys, the admission script, and what an outage means.

:class:`SharedState` is the store under :class:`~._redis.RedisBudget`: every
operation is one atomic call of ``budget.lua`` (the Python admission again,
timed by Redis' own clock), within ``timeout``. It knows nothing of gates,
lanes' order or fallbacks: a Redis that is away raises :class:`RedisDownError`
(and is not asked again for ``retry_every`` seconds); a Redis that refuses (a
password, ACL, a key in another slot) raises ``ConfigurationError``.

Needs the ``redis`` extra.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from importlib import resources
from typing import Any, Final

import anyio
import attrs
import orjson

from sendkit_async._clock import Clock
from sendkit_async._errors import ConfigurationError
from sendkit_async._redis_url import (
    AnyRedis,
    describe,
    first_call,
    outage_errors,
    refuse_misconfigured,
    untyped,
)

from ._pacer import Learner, Plan
from ._protocol import Lane

__all__ = ["Grant", "RedisDownError", "Released", "SharedState"]

logger = logging.getLogger("sendkit_async")

_SCRIPT: Final = resources.files(__package__).joinpath("budget.lua").read_text()


class RedisDownError(Exception):
    """Redis did not answer in time (or is known to be away); the caller paces alone."""


@attrs.frozen
class Grant:
    """The script's answer to ``acquire``: a slot (``granted``, after ``wait``) or how long to look away."""

    granted: bool
    wait: float  # until the slot; when not granted, a hint (< 0: wait for an answer)
    now: float  # Redis' time
    seq: int
    in_flight: int
    members: int  # processes seen on the key
    interval: float
    pause_until: float


@attrs.frozen
class Released:
    """The script's answer to ``observe``: the permit's place freed, and the key's learner as stored."""

    now: float
    version: int
    learner: bytes | str


@attrs.define(eq=False, repr=False)
class SharedState:
    """The Redis keys of one API key's budget and the script that reads and writes them.

    Args:
        client: the Redis client (plain, Sentinel-managed or cluster).
        clock: for the time an outage is remembered.
        prefix: the first part of every key.
        timeout: the longest a call may take, in seconds.
        retry_every: how long an outage is remembered before Redis is asked again.
        in_flight_ttl: how long an unanswered permit counts as in flight.
        keep: seconds every key lives after its last write.
        script_time: for tests only: the time the script uses instead of Redis' ``TIME``.
    """

    client: AnyRedis
    clock: Clock
    prefix: str
    timeout: float
    retry_every: float
    in_flight_ttl: float
    keep: int
    script_time: Callable[[], float] | None = None
    _keys: list[str] | None = attrs.field(init=False, default=None)
    _script: Any = attrs.field(init=False)
    _started: bool = attrs.field(init=False, default=False)  # the client's first call is behind it
    _retry_at: float = attrs.field(init=False, default=-math.inf)
    _healthy: bool = attrs.field(init=False, default=True)

    def __attrs_post_init__(self) -> None:
        self._script = untyped(self.client).register_script(_SCRIPT)

    def bind(self, key_id: str) -> None:
        """Name the keys after the API key's fingerprint, in one hash-tag slot."""
        base = f"{self.prefix}:{{{key_id}}}"
        self._keys = [f"{base}:{name}" for name in ("state", "flight", "members", "learner")]

    @property
    def keys(self) -> tuple[str, ...]:
        """The Redis keys it reads and writes (none before :meth:`bind`)."""
        return tuple(self._keys or ())

    @property
    def away(self) -> bool:
        """Whether Redis failed within the last ``retry_every`` seconds (so it is not asked)."""
        return self.clock.monotonic() < self._retry_at

    async def acquire(self, lane: Lane, token: str, process: str) -> Grant:
        """Ask for the next slot of ``lane`` for the permit ``token`` of ``process``."""
        reply = await self.call("acquire", int(lane), token, process, self.in_flight_ttl, self.keep)
        return Grant(
            granted=bool(int(reply[0])),
            wait=float(reply[1]),
            now=float(reply[2]),
            seq=int(reply[3]),
            in_flight=int(reply[4]),
            members=int(reply[5]),
            interval=float(reply[6]),
            pause_until=float(reply[7]),
        )

    async def release(self, token: str) -> Released:
        """Free the permit's place in flight; the learner comes back to be taught."""
        now, version, stored = await self.call("observe", token)
        return Released(float(now), int(version), stored)

    async def write(self, version: int, learner: Learner, plan: Plan) -> bool:
        """Store ``learner`` and its ``plan`` if nothing was written since ``version`` (else ``False``)."""
        fields = (repr(float(value)) for value in attrs.astuple(plan))
        written = await self.call("learn", version, orjson.dumps(learner.dump()), self.keep, *fields)
        return bool(int(written[0]))

    async def call(self, operation: str, *args: Any) -> Any:
        """One script call, as ``budget.lua`` states its operations.

        Raises:
            RedisDownError: Redis is away (down, slow, failing over), now or within ``retry_every``.
            ConfigurationError: Redis refuses (a password, ACL, a key in another slot), or not bound.
        """
        if self._keys is None:
            raise ConfigurationError(
                "bind() the budget to a key first (SendKit does it when given the budget)"
            )
        if self.away:
            raise RedisDownError
        given = "" if self.script_time is None else repr(self.script_time())
        try:
            if not self._started:
                await first_call(self.client)
                self._started = True
            with anyio.fail_after(self.timeout):
                reply = await self._script(keys=self._keys, args=[operation, given, *args])
        except outage_errors() as exc:
            refuse_misconfigured(exc, describe(self.client))
            if self._healthy:
                logger.warning(
                    "the shared rate budget in Redis is unreachable (%s); pacing this process alone at a "
                    "cautious share until it answers again",
                    type(exc).__name__,
                )
            self._healthy = False
            self._retry_at = self.clock.monotonic() + self.retry_every
            raise RedisDownError from exc
        self._healthy = True
        return reply

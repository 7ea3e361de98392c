"""The rate budget of one API key, shared by every process and host through Redis.

Needs the ``redis`` extra: ``pip install 'sendkit-async[redis]'``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any, ClassVar, Final

import anyio
import attrs
import cattrs
import orjson
from typing_extensions import Self

from sendkit_async._clock import Clock, SystemClock
from sendkit_async._config import DEFAULT_BUDGET_REDIS_TIMEOUT, DEFAULT_MAX_RETRY_WAIT
from sendkit_async._errors import ValidationError
from sendkit_async._redis_owner import RedisOwner
from sendkit_async._redis_url import AnyRedis, check_key_part, connect, describe

from ._admit import Admission
from ._gate import Gate
from ._local import LocalBudget
from ._pacer import Learner, Plan
from ._protocol import BudgetSnapshot, Lane, Observation, Permit, refuse_second_key
from ._shared import Grant, RedisDownError, SharedState
from ._teach import learn, snapshot_of

__all__ = ["RedisBudget"]

logger = logging.getLogger("sendkit_async")

# While the shared budget says "wait for an answer", look again this often,
# and never nap longer than _LOOK_AGAIN: answers reaching other processes
# cannot wake this one, and may open a slot sooner than the last reply said.
_POLL: Final = 0.05
_LOOK_AGAIN: Final = 0.1
# A process standing in for the shared budget takes this much of its share.
_CAUTION: Final = 0.8
# Two processes learning at once: the later one reads again and re-applies its answer.
_LEARN_TRIES: Final = 5


class RedisBudget(RedisOwner):
    """One budget per API key, shared through Redis by every process and host on that key.

    Admission is one atomic Lua script run per grant, timed by Redis' own
    clock, over state every process shares: a 429 seen by one process pauses
    all, a rate learned by one paces all, and interactive callers anywhere go
    ahead of bulk batches (bulk callers only take a slot that is due;
    interactive ones reserve the next). The learning is the same Python as
    :class:`LocalBudget`'s: the process that receives an answer reads the
    key's learner from Redis, teaches it, and writes it back with its plan (a
    version number makes a concurrent writer read again). Keys are named from
    a fingerprint of the API key and workspace, never the key, and every key
    expires an hour after its last write. A permit left by a process that died
    (``kill -9``) stops counting after ``in_flight_ttl``.

    If Redis is slow or unreachable, the process logs one warning and paces
    itself with a local budget at a cautious share of the rate (0.8 divided by
    the number of processes last seen on the key), then rejoins the shared
    budget once Redis answers again (tried every ``retry_every`` seconds).

    Example:
        >>> async with RedisBudget.from_url("redis://localhost:6379/0") as budget:  # doctest: +SKIP
        ...     async with SendKit(rate_budget=budget) as client:
        ...         await client.dnc.import_bulk(entries)

    A Redis that refuses (a wrong password, a missing ACL permission, a
    key in another cluster slot: ``MOVED``, ``CROSSSLOT``) is a setting to
    fix, not an outage: the call that meets it raises
    :class:`ConfigurationError`, naming the problem without the password.

    Args:
        client: a ``redis.asyncio.Redis`` (plain or from a ``Sentinel``'s
            ``master_for``) or a ``redis.asyncio.RedisCluster`` you already
            have (yours to close).
        clock: where it sleeps (tests pass a fake one).
        max_pause: the longest shared pause a single 429 may impose.
        prefix: the first part of every key it writes.
        timeout: the longest any Redis call may take, in seconds.
        retry_every: how often to try Redis again after it failed.
        in_flight_ttl: how long an unanswered permit counts as in flight.
        keep: seconds every key lives after its last write.
        script_time: for tests only: the time the script uses instead of
            Redis' own ``TIME`` (a fake clock's ``wall``), so a run in virtual
            time takes the same decisions as one in real time.
    """

    __slots__ = (
        "_clock",
        "_fallback",
        "_gate",
        "_key_id",
        "_learner",
        "_local_permits",
        "_members",
        "_offset",
        "_plan",
        "_process",
        "_remote",
        "_shared",
        "_state",
        "_tokens",
        "max_pause",
    )

    # The store's class (tests put one that holds virtual time still while Redis works).
    _Shared: ClassVar[type[SharedState]] = SharedState

    def __init__(
        self,
        client: AnyRedis,
        *,
        clock: Clock | None = None,
        max_pause: float = DEFAULT_MAX_RETRY_WAIT,
        prefix: str = "sendkit:budget",
        timeout: float = DEFAULT_BUDGET_REDIS_TIMEOUT,
        retry_every: float = 1.0,
        in_flight_ttl: float = 2.0,
        keep: int = 3600,
        script_time: Callable[[], float] | None = None,
    ) -> None:
        for name, value in (
            ("timeout", timeout),
            ("retry_every", retry_every),
            ("in_flight_ttl", in_flight_ttl),
        ):
            if not value > 0 or math.isinf(value):
                raise ValidationError(f"{name} must be a positive number of seconds, got {value!r}")
        check_key_part("prefix", prefix)
        super().__init__(client)
        self._clock: Clock = clock or SystemClock()
        self.max_pause = max_pause
        self._shared = self._Shared(
            client,
            self._clock,
            prefix=prefix,
            timeout=timeout,
            retry_every=retry_every,
            in_flight_ttl=in_flight_ttl,
            keep=keep,
            script_time=script_time,
        )
        self._gate = Gate(self._clock)
        self._key_id: str | None = None
        self._process = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._tokens = itertools.count()
        self._remote: dict[int, tuple[int, float]] = {}  # token -> (seq, when its slot is due)
        self._local_permits: dict[int, Permit] = {}
        self._fallback: LocalBudget | None = None
        # What the last replies showed, for snapshots.
        self._learner = Learner(max_pause=max_pause, alone=False)
        self._plan: Plan = self._learner.plan()
        self._state = Admission()
        self._members = 1
        self._offset = 0.0  # Redis' time less this clock's monotonic time, as of the last reply

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Self:
        """A budget with its own connection pool to ``url``; close it after.

        ``url`` is ``redis://``, ``rediss://``, ``unix://``,
        ``redis+cluster://host:port[,host:port]/`` or
        ``redis+sentinel://host:port[,host:port]/service[/db]``.

        Raises:
            ConfigurationError: a URL it does not know.
        """
        timeout = float(kwargs.get("timeout", DEFAULT_BUDGET_REDIS_TIMEOUT))
        return cls(connect(url, timeout=timeout, retry=False), **kwargs).owning_client()

    def __repr__(self) -> str:
        state = "shared" if self._fallback is None else "local fallback"
        return f"RedisBudget({describe(self._redis)}, prefix={self.prefix!r}, {state})"

    @property
    def prefix(self) -> str:
        """The first part of every key it writes."""
        return self._shared.prefix

    @property
    def in_flight_ttl(self) -> float:
        """How long an unanswered permit counts as in flight, in seconds."""
        return self._shared.in_flight_ttl

    @property
    def keep(self) -> int:
        """Seconds every key lives after its last write."""
        return self._shared.keep

    def bind(self, key_id: str) -> None:
        """Name this budget's keys after the key's fingerprint (the client calls it).

        Raises:
            ConfigurationError: it already paces another key.
        """
        refuse_second_key(self._key_id, key_id)
        self._key_id = key_id
        self._shared.bind(key_id)

    @property
    def shared(self) -> bool:
        """Whether it is pacing through Redis now (not its local fallback)."""
        return self._fallback is None

    async def acquire(self, lane: Lane = Lane.INTERACTIVE) -> Permit:
        """Wait for this caller's slot in the shared budget (or the local one while Redis is away)."""
        try:
            token = await self._gate.turn(lane, lambda: self._take(lane))
        except RedisDownError:
            return await self._local_acquire(lane)
        return Permit(lane=lane, token=token, granted_at=self._clock.wall())

    async def _take(self, lane: Lane) -> int | None:
        """A granted slot's token (after waiting for the slot), or ``None`` to step aside.

        Raises:
            RedisDownError: Redis is away (the caller paces with the local fallback).
        """
        while True:
            token = next(self._tokens)
            grant = await self._shared.acquire(lane, f"{self._process}:{token}", self._process)
            self._saw(grant)
            if grant.granted:
                self._state.seq = grant.seq + 1
                self._remote[token] = (grant.seq, grant.now + grant.wait)
                if grant.wait > 0:
                    try:
                        await self._clock.sleep(grant.wait)  # a reserved slot: keep it even if roused
                    except BaseException:
                        # Cancelled (or past max_queue_wait) before the send: free its place in flight now.
                        wall = self._clock.wall()
                        with anyio.CancelScope(shield=True):
                            await self.observe(
                                Permit(lane=lane, token=token, granted_at=wall),
                                Observation.of(None, sent_at=wall, received_at=wall),
                            )
                        raise
                return token
            if lane is Lane.BULK and self._gate.urgent():
                return None
            await self._gate.nap(_POLL if grant.wait < 0 else min(grant.wait, _LOOK_AGAIN))

    def _saw(self, grant: Grant) -> None:
        """Keep what a reply showed of the shared state (for snapshots); rejoin if standing in."""
        self._state.in_flight, self._members = grant.in_flight, grant.members
        self._offset = grant.now - self._clock.monotonic()
        self._plan = attrs.evolve(self._plan, interval=grant.interval, pause_until=grant.pause_until)
        if self._fallback is not None:
            logger.warning("the shared rate budget in Redis answers again; pacing with it")
            self._fallback = None

    async def _local_acquire(self, lane: Lane) -> Permit:
        fallback = self._fallback
        if fallback is None:
            share = _CAUTION / max(self._members, 1)
            fallback = self._fallback = LocalBudget(clock=self._clock, max_pause=self.max_pause, share=share)
        permit = await fallback.acquire(lane)
        token = next(self._tokens)
        self._local_permits[token] = permit
        return Permit(lane=lane, token=token, granted_at=permit.granted_at)

    async def observe(self, permit: Permit, observation: Observation) -> None:
        """Tell the shared budget how the attempt under ``permit`` ended; never raises."""
        local = self._local_permits.pop(permit.token, None)
        if local is not None:
            if self._fallback is not None:
                await self._fallback.observe(local, observation)
            return
        granted = self._remote.pop(permit.token, None)
        if granted is None:
            return
        try:
            await self._learn(f"{self._process}:{permit.token}", granted, observation, permit.lane)
        except RedisDownError:
            return
        self._gate.rouse()

    async def _learn(
        self, token: str, granted: tuple[int, float], observation: Observation, lane: Lane
    ) -> None:
        """Free the permit's place, then teach the key's learner the answer (read, learn, write back)."""
        for _ in range(_LEARN_TRIES):
            released = await self._shared.release(token)
            wall = self._clock.wall()
            self._offset = released.now - self._clock.monotonic()
            if observation.status is None:
                return
            learner = self._stored_learner(released.learner)
            seq, sent = granted
            learn(learner, observation, seq=seq, sent=sent, now=released.now, wall=wall, lane=lane)
            plan = learner.plan()
            if await self._shared.write(released.version, learner, plan):
                self._learner, self._plan = learner, plan
                return
        logger.debug("the shared budget's learner kept changing under this process; one answer was skipped")

    def _stored_learner(self, stored: bytes | str) -> Learner:
        if not stored:
            return Learner(max_pause=self.max_pause, alone=False)
        try:
            learner = Learner.load(orjson.loads(stored))
        except (orjson.JSONDecodeError, cattrs.BaseValidationError, TypeError, ValueError):
            logger.warning("the shared budget's learned state in Redis is unreadable; starting afresh")
            return Learner(max_pause=self.max_pause, alone=False)
        learner.max_pause, learner.alone = self.max_pause, False
        return learner

    def snapshot(self) -> BudgetSnapshot:
        """The shared budget's state as of the last script reply (the local one's while Redis is away)."""
        if self._fallback is not None:
            return self._fallback.snapshot()
        now = self._clock.monotonic() + self._offset
        return snapshot_of(self._learner, self._state, self._plan, now=now, waiting=self._gate.waiting)

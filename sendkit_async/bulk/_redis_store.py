"""Checkpoints and job leases in Redis: an import job that survives its host.

Needs the ``redis`` extra: ``pip install 'sendkit-async[redis]'``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, Final, Literal

import anyio
import orjson
from redis.asyncio.cluster import RedisCluster
from typing_extensions import Self

from sendkit_async._clock import Clock, SystemClock
from sendkit_async._config import DEFAULT_COMPLETED_TTL, DEFAULT_IDLE_TTL, DEFAULT_LEASE_TTL, MIN_LEASE_TTL
from sendkit_async._errors import ValidationError
from sendkit_async._logs import logger
from sendkit_async._redis_owner import RedisOwner
from sendkit_async._redis_url import (
    AgreedMaster,
    AnyRedis,
    check_key_part,
    connect,
    describe,
    follow_master,
    is_sentinel_managed,
    outage_errors,
    refuse_misconfigured,
    untyped,
)
from sendkit_async._validate import check_seconds

from ._errors import (
    CheckpointLostError,
    CheckpointUnavailableError,
    JobLeaseHeldError,
    JobLeaseLostError,
    NotACheckpointError,
)
from ._lease import Holder, check_job_name
from ._stores import CLAIM_POLL

__all__ = ["RedisCheckpoints"]

# KEYS: lease, header, batches. Every write is fenced by the lease: a holder
# that lost it (paused past its TTL while another took over) writes nothing.
# Fenced scripts answer 1 (done), 0 (another holder has the lease), -1 (the
# lease lapsed) or -2 (the lease and the header are gone: Redis lost its data).
_LOST: Final = """
local lease = redis.call('GET', KEYS[1])
if lease == ARGV[1] then return false end
if lease then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
return -2
"""
_CLAIM: Final = """
local lease = redis.call('GET', KEYS[1])
if lease == ARGV[1] or redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
return lease
"""
_RENEW: Final = (
    "local lost = (function()" + _LOST + "end)()\n"
    "if lost then return lost end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n"
)
_BEGIN: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'NX')
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
"""
_APPEND: Final = (
    "local lost = (function()" + _LOST + "end)()\n"
    "if lost then return lost end\n"
    "redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[3], ARGV[4])\n"
    "return 1\n"
)
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1
"""
_SCRIPTS: Final = {"claim": _CLAIM, "renew": _RENEW, "begin": _BEGIN, "append": _APPEND, "release": _RELEASE}
# A renewal or write that failed is tried again this soon (within the lease's life).
_RETRY: Final = 0.25
# Policies under which Redis may evict the lease or the record (all their keys have a TTL).
_EVICTING: Final = frozenset(
    {
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    }
)


def _seconds(name: str, value: float | timedelta, above: float = 0.0) -> float:
    return check_seconds(name, value.total_seconds() if isinstance(value, timedelta) else value, above=above)


class RedisCheckpoints(RedisOwner):
    """Import checkpoints and job leases in Redis, shared by every worker on every host.

    Pass it as ``checkpoint=`` with a ``job=`` name (or pass a
    ``redis://`` URL, and the job opens and closes one for itself). For each
    job it keeps three keys, ``{prefix}:{name}:lease|header|batches``:

    * **The lease** names the process running the job (host, pid, start) and
      lives ``lease_ttl`` seconds, renewed every third of that while the job
      runs. A second worker starting the same job is refused at once with
      :class:`JobLeaseHeldError` naming the holder (or waits ``lease_wait``
      seconds for it). When the holder dies, its lease ends within
      ``lease_ttl`` and another worker can take the job over, resuming from
      the records. A holder that cannot renew in time (Redis away, or the
      process paused) stops its job with :class:`JobLeaseLostError`, and
      every write is fenced by the lease, so a stale holder never writes.
    * **The header and the records** (one hash field per landed batch) are
      the same as a checkpoint file's. They expire ``completed_ttl`` (default
      7 days) after the job completes, or ``idle_ttl`` (default 30 days)
      after the last write of a job that never does: nothing grows without
      bound. Rerunning a completed job within ``completed_ttl`` sends nothing.

    * **Failover.** Behind Sentinel or in a Cluster, a write counts only
      once ``replicas`` replicas acknowledged it (``WAIT``; ``"auto"``: one,
      when the master has any replica at claim time, else none). A demoted
      master cannot confirm, so a holder cut off from the group writes
      nothing it believes, and its lease counts as held only up to a
      renewal a replica has: the promoted master's copy of the lease lapses
      no sooner than the holder stops. A landed batch's record is on a
      replica before the job counts it, so it survives the promotion.
      Writes that fail (the promotion takes seconds) are tried again for as
      long as the lease may still hold.
    * **Lost data.** A Redis that restarts without its data (or is
      flushed) loses the lease and the header together: the holder stops at
      its next renewal or write with :class:`CheckpointLostError`, and a
      rerun starts the job over (the server's duplicates account for what
      already landed).

    The API key is never stored; the header holds a fingerprint of the
    account, so a job name reused with another key is refused, not resumed.
    Every call runs whole, even when the job is cancelled, so give a client
    you build yourself a ``socket_timeout`` well under ``lease_ttl``
    (:meth:`from_url` does).
    """

    def __init__(
        self,
        redis: AnyRedis,
        *,
        lease_ttl: float | timedelta = DEFAULT_LEASE_TTL,
        completed_ttl: float | timedelta = DEFAULT_COMPLETED_TTL,
        idle_ttl: float | timedelta = DEFAULT_IDLE_TTL,
        prefix: str = "sendkit:job",
        replicas: int | Literal["auto"] = "auto",
    ) -> None:
        super().__init__(redis)
        if replicas != "auto" and (
            isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0
        ):
            raise ValidationError(f"replicas must be 'auto' or a whole number >= 0, got {replicas!r}")
        self.replicas = replicas
        self.lease_ttl = _seconds("lease_ttl", lease_ttl, MIN_LEASE_TTL)
        self.completed_ttl = _seconds("completed_ttl", completed_ttl)
        self.idle_ttl = _seconds("idle_ttl", idle_ttl)
        if not isinstance(prefix, str) or not prefix:
            raise ValidationError(f"prefix must be a non-empty string, got {prefix!r}")
        check_key_part("prefix", prefix)
        self.prefix = prefix
        self._eviction_checked = False
        self._scripts = {name: untyped(redis).register_script(source) for name, source in _SCRIPTS.items()}
        # Behind Sentinels, fenced writes go to the master the group agrees on (see _RedisJob._agreed_write).
        self.agreed = (
            AgreedMaster(redis, within=min(1.0, self.lease_ttl / 3)) if is_sentinel_managed(redis) else None
        )

    async def aclose(self) -> None:
        """Close the clients it made for a Sentinel group's masters, and its own pool if it opened it."""
        if self.agreed is not None:
            await self.agreed.aclose()
        await super().aclose()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Self:
        """A store with its own connection pool to ``url``; close it after.

        ``url`` takes the forms of :meth:`RedisBudget.from_url` (plain,
        TLS, unix socket, ``redis+cluster://``, ``redis+sentinel://``). Its
        calls time out after a third of ``lease_ttl`` (2 s at most), so a
        Redis that stops answering is noticed before the lease runs out.

        Raises:
            ConfigurationError: a URL it does not know.
        """
        timeout = min(
            2.0, _seconds("lease_ttl", kwargs.get("lease_ttl", DEFAULT_LEASE_TTL), MIN_LEASE_TTL) / 3
        )
        return cls(connect(url, timeout=timeout), **kwargs).owning_client()

    def __repr__(self) -> str:
        return f"RedisCheckpoints({self.where}, prefix={self.prefix!r}, lease_ttl={self.lease_ttl})"

    @property
    def where(self) -> str:
        """Where the store is, as a URL without any password, for messages (never raises)."""
        return describe(self._redis)

    async def check_eviction(self) -> None:
        """Warn, once, when Redis may evict keys under memory pressure: a lease or a record could vanish.

        Reads ``maxmemory-policy``; where ``CONFIG`` is not allowed (managed
        Redis), it says nothing. Set ``maxmemory-policy noeviction``, or give the
        job keys a Redis of their own.
        """
        if self._eviction_checked:
            return
        self._eviction_checked = True
        try:
            with anyio.fail_after(2):
                found: Any = await self._redis.config_get("maxmemory-policy")
        except outage_errors():
            return
        policy = found.get("maxmemory-policy") if isinstance(found, dict) else None
        if isinstance(policy, bytes):
            policy = policy.decode()
        if policy in _EVICTING:
            logger.warning(
                "Redis at %s evicts keys under memory pressure (maxmemory-policy %s): a job's lease or "
                "record could vanish mid-job; set maxmemory-policy noeviction for the checkpoint store",
                self.where,
                policy,
            )

    def job(self, name: str) -> _RedisJob:
        """The checkpoint of the job called ``name`` (1-200 printable characters, no spaces).

        Raises:
            ValidationError: a name that is not one.
        """
        check_job_name(name)
        return _RedisJob(self, name, self._redis, self._scripts)


@contextlib.contextmanager
def _answered(what: str) -> Iterator[None]:
    try:
        yield
    except outage_errors() as exc:
        refuse_misconfigured(exc, what)
        raise CheckpointUnavailableError(f"Redis checkpoint: could not {what}: {exc}") from exc


class _RedisJob:
    """One job's keys in a :class:`RedisCheckpoints` store."""

    __slots__ = (
        "_clock",
        "_contact",
        "_holder",
        "_keys",
        "_name",
        "_redis",
        "_replicas_seen",
        "_replication",
        "_scripts",
        "_store",
    )

    def __init__(self, store: RedisCheckpoints, name: str, redis: AnyRedis, scripts: dict[str, Any]) -> None:
        self._store = store
        self._name = name
        self._redis = redis
        self._scripts = scripts
        base = f"{store.prefix}:{{{name}}}"
        self._keys = [f"{base}:lease", f"{base}:header", f"{base}:batches"]
        self._holder = b""
        self._clock: Clock = SystemClock()
        self._contact = 0.0  # when the last renewal Redis confirmed was sent
        self._replication: _Replication | None = None  # how writes are confirmed (None: as Redis answers)
        self._replicas_seen: dict[tuple[str, int], int] = {}  # behind Sentinels: each master's, last seen

    def __str__(self) -> str:
        return f"job {self._name!r} in {self._store.where}"

    def _ms(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * 1000))

    async def _call(self, what: str, command: Callable[[], Awaitable[Any]]) -> Any:
        """One Redis call, run whole: redis-py cut off mid-call can leave a connection half closed."""
        with anyio.CancelScope(shield=True), _answered(what):
            return await command()

    async def _script(self, what: str, name: str, keys: int, args: list[Any]) -> Any:
        """Run one of the job's scripts; where replicas are followed, it counts once they confirm it.

        What confirms a write is :meth:`_Replication.confirmed`'s rule, or
        behind Sentinels :meth:`_agreed_write`'s.
        """
        if self._store.agreed is not None:
            return await self._call(what, lambda: self._agreed_write(what, name, keys, args))
        if self._replication is None:
            return await self._call(what, lambda: self._scripts[name](keys=self._keys[:keys], args=args))
        followed = self._replication
        wait_ms = self._ms(min(1.0, self._store.lease_ttl / 3)) if followed.wait_for else 0

        async def confirmed() -> Any:
            # One connection (a pipeline): WAIT counts the replicas that have
            # this connection's writes, and INFO describes that same node.
            target = _on_key_node(self._redis, self._keys[0])
            pipe = self._pipeline()
            pipe.eval(_SCRIPTS[name], keys, *self._keys[:keys], *args)  # type: ignore[arg-type,unused-ignore]
            pipe.execute_command("INFO", "replication", **target)
            pipe.execute_command("WAIT", followed.wait_for, wait_ms, **target)
            result, info, acknowledged = await pipe.execute()
            if followed.confirmed(info, acknowledged):
                return result
            await follow_master(self._redis)
            raise CheckpointUnavailableError(
                f"Redis checkpoint: could not {what}: the master did not confirm the write on a "
                f"replica within {wait_ms} ms (a failover under way?)"
            )

        return await self._call(what, confirmed)

    async def _agreed_write(self, what: str, name: str, keys: int, args: list[Any]) -> Any:
        """Behind Sentinels: the write lands on the master a majority names, and counts if it still is.

        The write, the node's replication and ``WAIT`` run in one pipeline on a
        client of that address alone. It counts when the node says it is a
        master, a majority of the Sentinels still name that address after it,
        and (``replicas="auto"``) a replica acknowledged it whenever the node
        or the Sentinels see one replicating. A demoted master that has not yet
        heard so, or a node the Sentinels are still voting about, confirms
        nothing: so no second worker can take the lease there while the first
        holds it on the promoted master.
        """
        agreed = self._store.agreed
        assert agreed is not None  # noqa: S101 - only called behind Sentinels
        fixed = self._store.replicas
        view = await agreed.view()
        if view is None:
            raise CheckpointUnavailableError(
                f"Redis checkpoint: could not {what}: the Sentinels do not agree on a master "
                "(a failover under way?)"
            )
        # A master that had a replica here, which the Sentinels still see alive, must get its ack:
        # having none connected now may mean it was just promoted away (a failover starting).
        had = self._replicas_seen.get(view.address, 0) and view.alive
        wanted = min(max(view.replicating, self._replicas_seen.get(view.address, 0)), 1)
        wait_for = wanted if fixed == "auto" else fixed
        wait_ms = self._ms(min(1.0, self._store.lease_ttl / 3)) if wait_for else 0
        pipe = agreed.client_of(view.address).pipeline(transaction=False)
        pipe.eval(_SCRIPTS[name], keys, *self._keys[:keys], *args)  # type: ignore[arg-type,unused-ignore]
        pipe.execute_command("INFO", "replication")
        pipe.execute_command("WAIT", wait_for, wait_ms)
        result, info, acknowledged = await pipe.execute()
        connected = _replicas(info)
        self._replicas_seen[view.address] = max(
            connected, self._replicas_seen.get(view.address, 0) if had else 0
        )
        needed = min(max(connected, view.replicating, 1 if had else 0), 1) if fixed == "auto" else fixed
        acked = acknowledged if isinstance(acknowledged, int) else 0
        master = isinstance(info, dict) and info.get("role") == "master"
        after = await agreed.view() if master and acked >= needed else None
        if after is None or after.address != view.address:
            raise CheckpointUnavailableError(
                f"Redis checkpoint: could not {what}: the node written to was not the master the "
                f"Sentinels agree on, or no replica confirmed the write within {wait_ms} ms "
                "(a failover under way?)"
            )
        return result

    async def _until(
        self,
        deadline: Callable[[], float],
        what: str,
        run: Callable[[], Awaitable[Any]],
        give_up: Callable[[CheckpointUnavailableError], BaseException] | None = None,
    ) -> Any:
        """``run()``, tried again every ``_RETRY`` s while Redis is away, until ``deadline()``.

        Then the last error is raised, or what ``give_up`` makes of it.
        """
        while True:
            try:
                return await run()
            except CheckpointUnavailableError as exc:
                if self._clock.monotonic() >= deadline():
                    if give_up is None:
                        raise
                    raise give_up(exc) from exc
                logger.warning("%s: could not %s (%s); trying again", self, what, exc)
                await self._clock.sleep(_RETRY)

    def _pipeline(self) -> Any:
        if isinstance(self._redis, RedisCluster):
            return self._redis.pipeline()
        return self._redis.pipeline(transaction=False)

    async def claim(self, holder: Holder, *, wait: float, clock: Clock) -> None:
        """Take the lease, on a master the group agrees on; a Redis that is away is waited for.

        Held by another process, the claim looks again until ``wait`` runs
        out (then :class:`JobLeaseHeldError`). Unreachable (a master killed,
        a failover under way), it tries again for ``wait`` seconds, and at
        least the lease's life, before :class:`CheckpointUnavailableError`.
        """
        await self._store.check_eviction()
        self._clock = clock
        value = holder.encode()
        args = [value, self._ms(self._store.lease_ttl)]
        started = clock.monotonic()
        held_until = started + wait
        away_until = max(held_until, started + self._store.lease_ttl)

        async def attempt() -> Holder | None:
            sent = clock.monotonic()
            self._replication = await self._follow()
            current = await self._script("take the job's lease", "claim", 1, args)
            if current == 0:
                self._holder = value
                self._contact = sent
                return None
            return Holder.decode(current)

        while True:
            try:
                found = await attempt()
            except CheckpointUnavailableError as exc:
                if clock.monotonic() >= away_until:
                    raise
                logger.warning("%s: could not take the job's lease (%s); trying again", self, exc)
                await clock.sleep(_RETRY)
                continue
            if found is None:
                return
            left = held_until - clock.monotonic()
            if left <= 0:
                raise JobLeaseHeldError(self._name, found)
            await clock.sleep(min(CLAIM_POLL, left))

    async def _follow(self) -> _Replication | None:
        """How the job's writes are confirmed: ``None`` for a master with no replica (nothing to wait for).

        Behind Sentinels the group's view decides (see :meth:`_agreed_write`),
        never the node's own: a demoted master that has lost its replica but
        not yet heard so would otherwise look like a master alone.
        """
        wanted = self._store.replicas
        if wanted == 0:
            return None

        async def info() -> Any:
            pipe = self._pipeline()
            pipe.execute_command("INFO", "replication", **_on_key_node(self._redis, self._keys[0]))
            return (await pipe.execute())[0]

        if self._store.agreed is not None:
            return None  # behind Sentinels every write is confirmed as _agreed_write says
        found = await self._call("read the master's replication", info)
        if wanted == "auto" and not _replicas(found):
            return None
        return _Replication(str(found.get("master_replid", "")), 1 if wanted == "auto" else wanted, wanted)

    def _lost(self, answer: object, doing: str) -> None:
        """Raise for a fenced script's answer that says the lease is not ours (see ``_LOST``)."""
        if answer == 0:
            raise JobLeaseLostError(f"{self}: another process took over the job's lease; stopped {doing}")
        if answer == -1:
            raise JobLeaseLostError(
                f"{self}: the job's lease lapsed in Redis (this process was away longer than its "
                f"{self._store.lease_ttl:g} s); stopped {doing} (rerun to resume)"
            )
        if answer == -2:  # noqa: PLR2004 - the script's code for "gone"
            raise CheckpointLostError(
                f"{self}: Redis lost the job's lease and checkpoint (restarted without its data, or "
                f"flushed); stopped {doing} before another worker takes the job; a rerun starts it over"
            )

    async def keep(self) -> None:
        """Renew the lease every third of its life; a renewal that fails is tried again soon.

        The lease is taken for lost only when it may really have lapsed: a
        whole ``lease_ttl`` after the last renewal Redis (and, with replicas,
        a replica) confirmed was sent, or when Redis says another process
        holds it or it is gone.
        """
        ttl = self._store.lease_ttl
        every = ttl / 3
        args = [self._holder, self._ms(ttl)]
        clock = self._clock
        wait = every
        while True:
            await clock.sleep(max(0.0, min(wait, self._contact + ttl - clock.monotonic())))
            if clock.monotonic() - self._contact >= ttl:
                raise JobLeaseLostError(
                    f"{self}: could not renew the job's lease within its {ttl:g} s, so another "
                    "worker may take the job over; stopped here (rerun to resume)"
                )
            sent = clock.monotonic()
            try:
                held = await self._script("renew the job's lease", "renew", 2, args)
            except CheckpointUnavailableError as exc:
                logger.warning("%s: could not renew the job's lease (%s); trying again", self, exc)
                wait = min(_RETRY, every)
                continue
            self._lost(held, "here")
            self._contact = sent
            wait = every

    async def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        node: AnyRedis = self._redis
        agreed = self._store.agreed
        if agreed is not None:  # the master the lease was just confirmed on
            view = await self._call("read the checkpoint", agreed.view)
            if view is None:
                raise CheckpointUnavailableError(
                    "Redis checkpoint: could not read the checkpoint: the Sentinels do not agree on a master"
                )
            node = agreed.client_of(view.address)
        header = await self._call("read the checkpoint", lambda: node.get(self._keys[1]))
        batches = await self._call("read the checkpoint", lambda: untyped(node).hgetall(self._keys[2]))
        if header is None:
            return None
        try:
            parsed = orjson.loads(header)
            records = [orjson.loads(value) for value in batches.values()]
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise NotACheckpointError(f"{self} is not a sendkit_async checkpoint")
        return parsed, records

    async def begin(self, header: dict[str, Any]) -> None:
        args = [self._holder, orjson.dumps(header), self._ms(self._store.idle_ttl)]
        await self._fenced("begin", args)

    async def append(self, record: dict[str, Any]) -> None:
        args = [self._holder, record["batch"], orjson.dumps(record), self._ms(self._store.idle_ttl)]
        await self._fenced("append", args)

    async def release(self, *, completed: bool) -> None:
        args = [self._holder, self._ms(self._store.completed_ttl) if completed else ""]
        await self._script("release the job's lease", "release", 3, args)

    async def _fenced(self, script: str, args: list[Any]) -> None:
        """Write under the lease; a write that fails is tried again while the lease may still hold.

        Writes are idempotent (a header, a batch's record under its index),
        so a retry after a lost answer records once. A Redis that stays away
        for the lease's whole life ends the job with :class:`JobLeaseLostError`.
        """
        ttl = self._store.lease_ttl

        def lost(exc: CheckpointUnavailableError) -> JobLeaseLostError:
            return JobLeaseLostError(
                f"{self}: could not write the checkpoint within the lease's {ttl:g} s ({exc}); "
                "stopped here (rerun to resume)"
            )

        written = await self._until(
            lambda: self._contact + ttl,
            "write the checkpoint",
            lambda: self._script("write the checkpoint", script, 3, args),
            lost,
        )
        self._lost(written, "writing")
        if written != 1:
            raise JobLeaseLostError(f"{self}: the job's lease was lost, so this process stopped writing")


def _replicas(info: object) -> int:
    """How many replicas ``INFO replication`` says are connected."""
    count = info.get("connected_slaves", 0) if isinstance(info, dict) else 0
    return count if isinstance(count, int) else 0


class _Replication:
    """Which writes count, when the job's master has replicas: the failover rule of :class:`RedisCheckpoints`.

    (Behind Sentinels the rule is :meth:`_RedisJob._agreed_write`'s.) A write
    counts once ``wait_for`` replicas acknowledged it (``WAIT``), on the
    master the job claimed on (``replid``, its replication id). A node with
    another id was promoted since: the master the group follows now. Alone
    (its replicas gone with the old master), it has none to wait for, so its
    writes count as they land, until a replica attaches again. The old
    master, demoted but not yet told, keeps the old id and has lost its
    replica: nothing written there counts.
    """

    __slots__ = ("fixed", "replid", "wait_for")

    def __init__(self, replid: str, wait_for: int, fixed: int | Literal["auto"]) -> None:
        self.replid = replid
        self.wait_for = wait_for
        self.fixed = fixed

    def confirmed(self, info: object, acknowledged: object) -> bool:
        acked = acknowledged if isinstance(acknowledged, int) else 0
        if not isinstance(info, dict) or info.get("role") != "master":
            return False
        if self.fixed != "auto":
            return acked >= self.fixed
        promoted = str(info.get("master_replid", "")) != self.replid
        if acked >= self.wait_for > 0:
            return True
        if not promoted:
            return False
        alone = _replicas(info) == 0
        self.wait_for = 0 if alone else 1  # the next write waits for the replica that attached
        return alone


def _on_key_node(redis: AnyRedis, key: str) -> dict[str, Any]:
    """``target_nodes=`` for a command without keys that must run where ``key`` lives (Cluster only)."""
    if isinstance(redis, RedisCluster):
        return {"target_nodes": redis.get_node_from_key(key)}
    return {}

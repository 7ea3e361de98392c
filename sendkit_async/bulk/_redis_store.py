"""Checkpoints and job leases in Redis: an import job that survives its host.

Needs the ``redis`` extra: ``pip install 'sendkit-async[redis]'``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, Final

import anyio
import orjson
from typing_extensions import Self

from sendkit_async._errors import ValidationError
from sendkit_async._logs import logger
from sendkit_async._redis_owner import RedisOwner
from sendkit_async._redis_url import (
    AnyRedis,
    check_key_part,
    connect,
    describe,
    outage_errors,
    refuse_misconfigured,
)
from sendkit_async._validate import check_seconds

from ._lease import Holder, JobLeaseLostError, check_job_name, claim_within
from ._stores import CheckpointUnavailableError, NotACheckpointError

__all__ = ["RedisCheckpoints"]

# KEYS: lease, header, batches. Every write is fenced by the lease: a holder
# that lost it (paused past its TTL while another took over) writes nothing.
_CLAIM: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
return redis.call('GET', KEYS[1])
"""
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_BEGIN: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'NX')
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
"""
_APPEND: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return 1
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1
"""
_MIN_LEASE: Final = 0.3
_LEASE_TTL: Final = 5.0
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
        lease_ttl: float | timedelta = _LEASE_TTL,
        completed_ttl: float | timedelta = timedelta(days=7),
        idle_ttl: float | timedelta = timedelta(days=30),
        prefix: str = "sendkit:job",
    ) -> None:
        super().__init__(redis)
        self.lease_ttl = _seconds("lease_ttl", lease_ttl, _MIN_LEASE)
        self.completed_ttl = _seconds("completed_ttl", completed_ttl)
        self.idle_ttl = _seconds("idle_ttl", idle_ttl)
        if not isinstance(prefix, str) or not prefix:
            raise ValidationError(f"prefix must be a non-empty string, got {prefix!r}")
        check_key_part("prefix", prefix)
        self.prefix = prefix
        self._eviction_checked = False
        scripts = {"claim": _CLAIM, "renew": _RENEW, "begin": _BEGIN, "append": _APPEND, "release": _RELEASE}
        self._scripts = {name: redis.register_script(source) for name, source in scripts.items()}

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
        timeout = min(2.0, _seconds("lease_ttl", kwargs.get("lease_ttl", _LEASE_TTL), _MIN_LEASE) / 3)
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

    __slots__ = ("_contact", "_holder", "_keys", "_name", "_redis", "_scripts", "_store")

    def __init__(self, store: RedisCheckpoints, name: str, redis: AnyRedis, scripts: dict[str, Any]) -> None:
        self._store = store
        self._name = name
        self._redis = redis
        self._scripts = scripts
        base = f"{store.prefix}:{{{name}}}"
        self._keys = [f"{base}:lease", f"{base}:header", f"{base}:batches"]
        self._holder = b""
        self._contact = time.monotonic()  # the last time Redis confirmed our lease

    def __str__(self) -> str:
        return f"job {self._name!r} in {self._store.where}"

    def _ms(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * 1000))

    async def _call(self, what: str, command: Callable[[], Awaitable[Any]]) -> Any:
        """One Redis call, run whole: redis-py cut off mid-call can leave a connection half closed."""
        with anyio.CancelScope(shield=True), _answered(what):
            return await command()

    async def claim(self, holder: Holder, *, wait: float) -> None:
        await self._store.check_eviction()
        value = holder.encode()
        args = [value, self._ms(self._store.lease_ttl)]

        async def attempt() -> Holder | None:
            current = await self._call(
                "take the job's lease", lambda: self._scripts["claim"](keys=self._keys[:1], args=args)
            )
            if current == 0:
                self._holder = value
                self._contact = time.monotonic()
                return None
            return Holder.decode(current)

        await claim_within(attempt, job=self._name, wait=wait)

    async def keep(self) -> None:
        """Renew the lease every third of its life; a renewal that fails is tried again at once.

        The lease is taken for lost only when it may really have lapsed: no
        renewal got through for a whole ``lease_ttl`` (or another process holds it).
        """
        ttl = self._store.lease_ttl
        every = ttl / 3
        args = [self._holder, self._ms(ttl)]
        wait = every
        while True:
            await anyio.sleep(wait)
            try:
                held = await self._call(
                    "renew the job's lease", lambda: self._scripts["renew"](keys=self._keys[:1], args=args)
                )
            except CheckpointUnavailableError:
                held = None
            if held == 0:
                raise JobLeaseLostError(f"{self}: another process took over the job's lease")
            if held:
                self._contact = time.monotonic()
                wait = every
            elif time.monotonic() - self._contact >= ttl:
                raise JobLeaseLostError(
                    f"{self}: could not renew the job's lease within its {ttl:g} s, so another "
                    "worker may take the job over; stopped here (rerun to resume)"
                )
            else:
                logger.warning("%s: could not renew the job's lease; trying again", self)
                wait = min(_RETRY, every)

    async def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        header = await self._call("read the checkpoint", lambda: self._redis.get(self._keys[1]))
        batches = await self._call("read the checkpoint", lambda: self._redis.hgetall(self._keys[2]))
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
        await self._call(
            "release the job's lease", lambda: self._scripts["release"](keys=self._keys, args=args)
        )

    async def _fenced(self, script: str, args: list[Any]) -> None:
        """Write under the lease; a write that fails is tried again while the lease may still hold.

        Writes are idempotent (a header, a batch's record under its index),
        so a retry after a lost answer records once. A Redis that stays away
        for the lease's whole life ends the job with :class:`JobLeaseLostError`.
        """
        while True:
            try:
                written = await self._call(
                    "write the checkpoint", lambda: self._scripts[script](keys=self._keys, args=args)
                )
                break
            except CheckpointUnavailableError as exc:
                if time.monotonic() - self._contact >= self._store.lease_ttl:
                    raise JobLeaseLostError(
                        f"{self}: could not write the checkpoint within the lease's "
                        f"{self._store.lease_ttl:g} s ({exc}); stopped here (rerun to resume)"
                    ) from exc
                logger.warning("%s: could not write the checkpoint; trying again", self)
                await anyio.sleep(_RETRY)
        if not written:
            raise JobLeaseLostError(f"{self}: the job's lease was lost, so this process stopped writing")

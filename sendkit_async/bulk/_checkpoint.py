"""A resumable import's checkpoint: which batches landed, kept in a store, with a lease on the job.

The header names the job's settings (and a fingerprint of the account, so a
job never resumes against another one); each record is one batch that
landed: its index, input span, a digest of its entries, and its counts. A
record holds the addresses of entries the server refused (so the report
adds up on resume) and never the API key. The store (a file, or Redis) only
keeps them; the rules are here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

import anyio

from sendkit_async._clock import Clock
from sendkit_async._config import REDIS_URL_SCHEMES
from sendkit_async._errors import ConfigurationError, SendKitError
from sendkit_async._logs import logger

from ._errors import CheckpointMismatchError, NotACheckpointError
from ._lease import Holder
from ._prepare import Batch, landed_domains
from ._report import BatchResult, FailedEntry, FailureKind
from ._stores import CheckpointStore, FileJob, JobStore

if TYPE_CHECKING:
    from ._redis_store import RedisCheckpoints

__all__ = ["Checkpoint", "CheckpointMismatchError", "checkpoint_for", "is_store_url", "redis_checkpoints"]

VERSION: Final = 2


class Checkpoint:
    """Reads landed batches at start and records each newly landed one, holding the job's lease."""

    __slots__ = ("_clock", "_header", "_landed", "_lock", "_owned", "_store")

    def __init__(self, store: JobStore, settings: dict[str, Any], *, clock: Clock, owned: Any = None) -> None:
        self._store = store
        self._clock = clock
        self._header = {"version": VERSION, **settings}
        self._landed: dict[int, dict[str, Any]] = {}
        self._lock = anyio.Lock()
        self._owned = owned

    @property
    def landed(self) -> int:
        """How many batches the store recorded at open."""
        return len(self._landed)

    async def open(self, *, wait: float) -> None:
        """Take the job's lease, then load what earlier runs recorded; on any failure, let go of both.

        Raises:
            JobLeaseHeldError: another process runs the job.
            CheckpointMismatchError: the store holds another job's checkpoint.
        """
        try:
            await self._store.claim(Holder.here(), wait=wait, clock=self._clock)
            try:
                found = await self._store.read()
            except NotACheckpointError as exc:
                raise CheckpointMismatchError(str(exc)) from None
            if found is not None:
                self._load(*found)
            await self._store.begin(self._header)
        except BaseException:
            # Let go of whatever was taken, even when a cancellation cut the claim short.
            with anyio.CancelScope(shield=True):
                await self.close(completed=False)
            raise

    def _load(self, header: dict[str, Any], records: list[dict[str, Any]]) -> None:
        if header != self._header:
            raise CheckpointMismatchError(
                f"{self._store} was written with other settings ({header}); use the same "
                "batch size, byte bound, dedupe, reason, type and account, or start a new checkpoint",
            )
        self._landed = {int(record["batch"]): record for record in records}

    async def keep(self) -> None:
        """Hold the lease while the job runs (never returns; raises once it is lost)."""
        await self._store.keep()

    async def close(self, *, completed: bool) -> None:
        """Release the lease (a completed job's records start to expire) and any store opened for it.

        Never raises for a store that cannot be reached: the lease then ends
        by itself within its TTL (logged as a warning).
        """
        try:
            await self._store.release(completed=completed)
        except SendKitError as exc:  # cleanup: the lease ends by itself within its TTL
            logger.warning("%s: could not let go of the job: %s", self._store, exc)
        finally:
            await self._close_owned()

    async def _close_owned(self) -> None:
        if self._owned is not None:
            await self._owned.aclose()

    def resume(self, batch: Batch) -> BatchResult | None:
        """The recorded result for ``batch``, or ``None`` if it has yet to land.

        Raises:
            CheckpointMismatchError: the batch differs from the recorded one,
                so the input is not the one the checkpoint was written for.
        """
        record = self._landed.get(batch.index)
        if record is None:
            return None
        if (record["start"], record["end"], record["digest"]) != (batch.start, batch.end, batch.digest()):
            raise CheckpointMismatchError(
                f"batch {batch.index} differs from the one {self._store} recorded; "
                "resume with the same input, or start a new checkpoint",
            )
        failed = tuple(
            FailedEntry(position, email, FailureKind.REJECTED_BY_SERVER, reason)
            for position, email, reason in record["failed"]
        )
        return BatchResult(
            index=batch.index,
            start=batch.start,
            end=batch.end,
            sent=len(batch.entries),
            imported=record["imported"],
            skipped=record["skipped"],
            rejected=tuple(batch.rejected),
            duplicates=batch.duplicates,
            failed=failed,
            domains=landed_domains(batch, failed),
            resumed=True,
        )

    async def record(self, batch: Batch, result: BatchResult) -> None:
        """Store a landed batch durably (one write at a time, not cancellable mid-write)."""
        record = {
            "batch": result.index,
            "start": result.start,
            "end": result.end,
            "digest": batch.digest(),
            "imported": result.imported,
            "skipped": result.skipped,
            "failed": [[f.position, f.email, f.reason] for f in result.failed],
        }
        async with self._lock:
            with anyio.CancelScope(shield=True):
                await self._store.append(record)


def is_store_url(value: object) -> bool:
    """Whether ``checkpoint=`` names a Redis store rather than a file (any URL form; see ``_redis_url``)."""
    return isinstance(value, str) and value.lower().startswith(REDIS_URL_SCHEMES)


def is_unknown_url(value: object) -> bool:
    """A ``scheme://`` string that names no store the SDK knows (refused, never taken for a path)."""
    return isinstance(value, str) and "://" in value and not is_store_url(value)


def checkpoint_for(
    checkpoint: str | os.PathLike[str] | CheckpointStore,
    job: str | None,
    settings: dict[str, Any],
    clock: Clock,
) -> Checkpoint:
    """The checkpoint ``checkpoint=`` and ``job=`` name (not opened yet), timed on the client's ``clock``.

    Raises:
        ConfigurationError: a Redis URL without the ``redis`` extra installed.
    """
    if isinstance(checkpoint, CheckpointStore):
        return Checkpoint(checkpoint.job(str(job)), settings, clock=clock)
    if is_store_url(checkpoint):
        store = redis_checkpoints(str(checkpoint))
        return Checkpoint(store.job(str(job)), settings, clock=clock, owned=store)
    return Checkpoint(FileJob(checkpoint), settings, clock=clock)


def redis_checkpoints(url: str, **options: Any) -> RedisCheckpoints:
    """A :class:`RedisCheckpoints` with a connection pool of its own to ``url`` (close it after).

    Raises:
        ConfigurationError: the ``redis`` extra is not installed.
    """
    try:
        from ._redis_store import RedisCheckpoints  # noqa: PLC0415 - the optional extra
    except ImportError:
        raise ConfigurationError(
            "a redis:// checkpoint needs the redis extra: pip install 'sendkit-async[redis]'"
        ) from None
    return RedisCheckpoints.from_url(url, **options)

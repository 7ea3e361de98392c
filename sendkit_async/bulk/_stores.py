"""Where a job's checkpoint lives: the store protocol, and the JSON Lines file that implements it.

A store keeps, for one job, a header (the settings that decide how input
becomes batches), one record per landed batch, and a lease that names the
one process running the job. :class:`~._checkpoint.Checkpoint` holds the
rules (what must match, what a record says); stores only keep bytes. The
Redis store is in :mod:`._redis_store`.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import orjson

from sendkit_async._clock import Clock

from ._errors import CheckpointUnavailableError, JobLeaseHeldError, NotACheckpointError
from ._lease import Holder

__all__ = ["CheckpointStore", "FileJob", "JobStore", "claim_within"]

# How often a waiting claim looks again.
CLAIM_POLL: Final = 0.25


class JobStore(Protocol):
    """One job's checkpoint in one store; :class:`~._checkpoint.Checkpoint` drives it in this order.

    ``claim`` → ``read`` → ``begin`` → ``append``... (with ``keep`` running
    beside them) → ``release``. Every method may raise
    :class:`CheckpointUnavailableError`.
    """

    async def claim(self, holder: Holder, *, wait: float, clock: Clock) -> None:
        """Take the job's lease, waiting up to ``wait`` seconds (on ``clock``) for another holder's to end.

        ``clock`` is the client's: the store keeps and renews the lease on it.

        Raises:
            JobLeaseHeldError: another process holds it still.
        """

    async def keep(self) -> None:
        """Hold the lease while the job runs; never returns.

        Raises:
            JobLeaseLostError: the lease could not be renewed in time, or was taken.
        """

    async def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The stored header and landed-batch records, or ``None`` for a job not started yet.

        Raises:
            NotACheckpointError: the store holds something else under this name.
        """

    async def begin(self, header: dict[str, Any]) -> None:
        """Be ready to append: store ``header`` if the job is new."""

    async def append(self, record: dict[str, Any]) -> None:
        """Store one landed batch's record durably."""

    async def release(self, *, completed: bool) -> None:
        """Give the lease back; a completed job's records start to expire (where the store expires)."""


@runtime_checkable
class CheckpointStore(Protocol):
    """A place holding many named jobs' checkpoints, such as :class:`~sendkit_async.bulk.RedisCheckpoints`."""

    def job(self, name: str) -> JobStore:
        """The checkpoint of the job called ``name``."""
        ...


class FileJob:
    """A job whose checkpoint is one JSON Lines file; its lease is a lock on ``FILE.lock``.

    The first line is the header; each further line is one landed batch. A
    torn last line (a crash mid-write) is cut off on the next run. The lease
    is an exclusive ``flock`` of a lock file beside the checkpoint holding
    the holder's host, pid and start: the kernel drops it when the process
    dies, so a killed job's file is free at once. (There is no lock on
    Windows, which lacks ``flock``: two runs there are not kept apart.) The
    file stays after the job completes; it is the caller's to delete.
    Writes run on a worker thread, so the event loop never waits on the disk.
    """

    __slots__ = ("_file", "_lock", "_lock_path", "_path", "_start")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._file: Any = None
        self._lock: Any = None
        self._start = 0

    def __str__(self) -> str:
        return f"checkpoint {self._path}"

    async def claim(self, holder: Holder, *, wait: float, clock: Clock) -> None:
        attempt = functools.partial(self._io, self._try_lock, holder)
        await claim_within(attempt, job=str(self._path), wait=wait, clock=clock)

    async def keep(self) -> None:
        await anyio.sleep_forever()  # the kernel holds a flock for as long as the process lives

    async def read(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        found: tuple[dict[str, Any], list[dict[str, Any]]] | None = await self._io(self._read)
        return found

    async def begin(self, header: dict[str, Any]) -> None:
        await self._io(self._begin, header)

    async def append(self, record: dict[str, Any]) -> None:
        await self._io(self._append, orjson.dumps(record) + b"\n")

    async def release(self, *, completed: bool) -> None:  # noqa: ARG002 - a file never expires
        await self._io(self._release)

    @staticmethod
    async def _io(function: Any, *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(function, *args)
        except OSError as exc:
            raise CheckpointUnavailableError(f"checkpoint file: {exc}") from exc

    def _try_lock(self, holder: Holder) -> Holder | None:
        if sys.platform == "win32":
            return None
        import fcntl  # noqa: PLC0415 - POSIX only

        path = self._lock_path
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.open("a+b")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            data = lock.read()
            lock.close()
            return Holder.decode(data)
        # The last holder removes the file as it lets go: a lock taken on the
        # removed file holds nothing, so look again.
        if not path.exists() or os.stat(path).st_ino != os.fstat(lock.fileno()).st_ino:  # noqa: PTH116
            lock.close()
            return self._try_lock(holder)
        lock.truncate(0)
        lock.write(holder.encode())
        lock.flush()
        self._lock = lock
        return None

    def _read(self) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        if not self._path.exists() or self._path.stat().st_size == 0:
            return None
        data = self._path.read_bytes()
        lines = data.split(b"\n")
        try:
            header = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            header = None
        if not isinstance(header, dict):
            raise NotACheckpointError(f"{self._path} is not a sendkit_async checkpoint")
        records: list[dict[str, Any]] = []
        whole = len(lines[0]) + 1
        for line in lines[1:]:
            if line:
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    break  # a torn last line from a crash mid-write: that batch did not count
            whole += len(line) + 1
        self._start = min(whole, len(data))
        return header, records

    def _begin(self, header: dict[str, Any]) -> None:
        if self._start:
            self._file = self._path.open("r+b")
            self._file.truncate(self._start)  # cut a torn tail off, so new lines start clean
            self._file.seek(self._start - 1)
            if self._file.read(1) != b"\n":
                self._file.write(b"\n")
        else:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("wb")
            self._append(orjson.dumps(header) + b"\n")

    def _append(self, line: bytes) -> None:
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())

    def _release(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()
        lock, self._lock = self._lock, None
        if lock is not None:
            self._lock_path.unlink(missing_ok=True)
            lock.close()  # closing drops the flock


async def claim_within(
    attempt: Callable[[], Awaitable[Holder | None]], *, job: str, wait: float, clock: Clock
) -> None:
    """Try ``attempt`` (``None`` when it took the lease, else who holds it) until ``wait`` seconds pass.

    Each attempt runs whole (shielded): a claim cut off mid-way could hold
    the lease without knowing it. ``clock`` measures the wait.

    Raises:
        JobLeaseHeldError: the lease was still held when the wait ran out.
    """
    deadline = clock.monotonic() + wait
    while True:
        with anyio.CancelScope(shield=True):
            held = await attempt()
        if held is None:
            return
        left = deadline - clock.monotonic()
        if left <= 0:
            raise JobLeaseHeldError(job, held)
        await clock.sleep(min(CLAIM_POLL, left))

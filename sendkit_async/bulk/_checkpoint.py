"""A resumable import's record of landed batches, as JSON Lines.

The first line names the job's settings; each further line is one batch that
landed: its index, input span, a digest of its entries, and its counts. The
file holds addresses of entries the server refused (so the report adds up on
resume) and never the API key. Writes go through a worker thread so the
event loop never blocks on the disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import orjson

from sendkit_async._errors import ValidationError

from ._prepare import Batch
from ._report import BatchResult, FailedEntry, FailureKind

__all__ = ["Checkpoint", "CheckpointMismatchError"]

VERSION: Final = 1


class CheckpointMismatchError(ValidationError):
    """The checkpoint was written by a job with other settings or other input."""


class Checkpoint:
    """Reads landed batches at start and appends each newly landed one."""

    __slots__ = ("_file", "_landed", "_lock", "_path", "_settings")

    def __init__(self, path: str | os.PathLike[str], settings: dict[str, Any]) -> None:
        self._path = Path(path)
        self._settings = {"version": VERSION, **settings}
        self._landed: dict[int, dict[str, Any]] = {}
        self._lock = anyio.Lock()
        self._file: Any = None

    @property
    def landed(self) -> int:
        """How many batches the file recorded at open."""
        return len(self._landed)

    def _open_sync(self) -> None:
        if self._path.exists() and self._path.stat().st_size > 0:
            data = self._path.read_bytes()
            lines = data.split(b"\n")
            try:
                header = orjson.loads(lines[0])
            except orjson.JSONDecodeError:
                raise CheckpointMismatchError(f"{self._path} is not a sendkit_async checkpoint") from None
            if header != self._settings:
                raise CheckpointMismatchError(
                    f"checkpoint {self._path} was written with other settings ({header}); "
                    "use the same batch size, byte bound, dedupe and reason, or start a new file",
                )
            whole = len(lines[0]) + 1
            for line in lines[1:]:
                if not line:
                    whole += 1
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    break  # a torn last line from a crash mid-write: that batch did not count
                self._landed[int(record["batch"])] = record
                whole += len(line) + 1
            whole = min(whole, len(data))
            self._file = self._path.open("r+b")
            self._file.truncate(whole)  # cut a torn tail off, so new lines start clean
            self._file.seek(whole)
            if not data[:whole].endswith(b"\n"):
                self._file.write(b"\n")
        else:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("wb")
            self._file.write(orjson.dumps(self._settings) + b"\n")
            self._file.flush()

    async def open(self) -> None:
        """Load what an earlier run recorded and open the file for appending."""
        await anyio.to_thread.run_sync(self._open_sync)

    async def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            file, self._file = self._file, None
            await anyio.to_thread.run_sync(file.close)

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
                f"batch {batch.index} differs from the one checkpoint {self._path} recorded; "
                "resume with the same input, or start a new checkpoint file",
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
            resumed=True,
        )

    async def record(self, batch: Batch, result: BatchResult) -> None:
        """Append a landed batch and flush it to disk (not cancellable mid-write)."""
        line = orjson.dumps(
            {
                "batch": result.index,
                "start": result.start,
                "end": result.end,
                "digest": batch.digest(),
                "imported": result.imported,
                "skipped": result.skipped,
                "failed": [[f.position, f.email, f.reason] for f in result.failed],
            },
        )

        def write() -> None:
            self._file.write(line + b"\n")
            self._file.flush()
            os.fsync(self._file.fileno())

        async with self._lock:
            await anyio.to_thread.run_sync(write)

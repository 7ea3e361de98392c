"""Bulk helpers: chunked, concurrent DNC imports and inbox operations, paced by the client's budget.

Use them through the client (``client.dnc.import_bulk``, ``client.dnc.iter_import``,
``client.inbox.update_many``); this package holds the engine and its report types.
"""

from __future__ import annotations

import typing as _typing

from sendkit_async._config import DEFAULT_LEASE_TTL, MIN_LEASE_TTL
from sendkit_async._extra import from_redis_extra as _from_redis_extra
from sendkit_async._flow import Concurrency

from ._checkpoint import is_store_url, redis_checkpoints
from ._engine import DEFAULT_CONCURRENCY, DEFAULT_MAX_BATCH_BYTES, ImportJob, ImportOptions, ImportSettings
from ._errors import (
    CheckpointLostError,
    CheckpointMismatchError,
    CheckpointUnavailableError,
    ImportAbortedError,
    JobLeaseHeldError,
    JobLeaseLostError,
    NotACheckpointError,
)
from ._inbox import DEFAULT_IDS_PER_REQUEST, UpdateOutcome
from ._lease import Holder
from ._prepare import DryRunReport, UnreadableItem
from ._report import (
    BatchResult,
    FailedEntry,
    FailureKind,
    ImportProgress,
    ImportReport,
    RejectedEntry,
)
from ._stores import CheckpointStore, JobStore

if _typing.TYPE_CHECKING:
    from ._redis_store import RedisCheckpoints


def __getattr__(name: str) -> _typing.Any:
    """``RedisCheckpoints`` is imported on first use: it needs the ``redis`` extra."""
    if name == "RedisCheckpoints":
        return _from_redis_extra("sendkit_async.bulk._redis_store", name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_IDS_PER_REQUEST",
    "DEFAULT_LEASE_TTL",
    "DEFAULT_MAX_BATCH_BYTES",
    "MIN_LEASE_TTL",
    "BatchResult",
    "CheckpointLostError",
    "CheckpointMismatchError",
    "CheckpointStore",
    "CheckpointUnavailableError",
    "Concurrency",
    "DryRunReport",
    "FailedEntry",
    "FailureKind",
    "Holder",
    "ImportAbortedError",
    "ImportJob",
    "ImportOptions",
    "ImportProgress",
    "ImportReport",
    "ImportSettings",
    "JobLeaseHeldError",
    "JobLeaseLostError",
    "JobStore",
    "NotACheckpointError",
    "RedisCheckpoints",
    "RejectedEntry",
    "UnreadableItem",
    "UpdateOutcome",
    "is_store_url",
    "redis_checkpoints",
]

"""Bulk helpers: chunked, concurrent, header-paced DNC imports and inbox operations.

Use them through the client (``client.dnc.import_bulk``, ``client.dnc.iter_import``,
``client.inbox.update_many``); this package holds the engine and its report types.
"""

from __future__ import annotations

from ._checkpoint import CheckpointMismatchError
from ._engine import DEFAULT_CONCURRENCY, DEFAULT_MAX_BATCH_BYTES, ImportJob, ImportOptions
from ._inbox import DEFAULT_IDS_PER_REQUEST, UpdateOutcome
from ._limiter import RateLimiter, TokenBucket
from ._prepare import DryRunReport
from ._report import BatchResult, FailedEntry, FailureKind, ImportProgress, ImportReport, RejectedEntry

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_IDS_PER_REQUEST",
    "DEFAULT_MAX_BATCH_BYTES",
    "BatchResult",
    "CheckpointMismatchError",
    "DryRunReport",
    "FailedEntry",
    "FailureKind",
    "ImportJob",
    "ImportOptions",
    "ImportProgress",
    "ImportReport",
    "RateLimiter",
    "RejectedEntry",
    "TokenBucket",
    "UpdateOutcome",
]

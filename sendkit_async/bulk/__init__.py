"""Bulk helpers: chunked, concurrent DNC imports and inbox operations, paced by the client's budget.

Use them through the client (``client.dnc.import_bulk``, ``client.dnc.iter_import``,
``client.inbox.update_many``); this package holds the engine and its report types.
"""

from __future__ import annotations

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
from ._prepare import DryRunReport
from ._report import (
    BatchResult,
    FailedEntry,
    FailureKind,
    ImportProgress,
    ImportReport,
    RejectedEntry,
)
from ._stores import CheckpointStore, JobStore

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_IDS_PER_REQUEST",
    "DEFAULT_MAX_BATCH_BYTES",
    "BatchResult",
    "CheckpointLostError",
    "CheckpointMismatchError",
    "CheckpointStore",
    "CheckpointUnavailableError",
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
    "RejectedEntry",
    "UpdateOutcome",
]

"""The errors of bulk jobs: a stopped import, a checkpoint that cannot be used, a job's lease.

They hang off :class:`~sendkit_async.SendKitError`; the whole tree, core and
bulk, is drawn in :mod:`sendkit_async._errors`. They live here, not there,
because they carry bulk types (a report, a lease holder) and the core never
reaches up into ``bulk/``.
"""

from __future__ import annotations

from sendkit_async._errors import SendKitError, ValidationError

from ._lease import Holder
from ._report import ImportReport

__all__ = [
    "CheckpointLostError",
    "CheckpointMismatchError",
    "CheckpointUnavailableError",
    "ImportAbortedError",
    "JobLeaseHeldError",
    "JobLeaseLostError",
    "NotACheckpointError",
]


class ImportAbortedError(SendKitError):
    """A bulk import stopped before the end.

    The cause is a fatal API error (401, 403, 404), an input that raised, or
    a checkpoint written for another job.

    Attributes:
        report: the account up to the stop; entries that were not sent are
            in ``report.not_sent``. ``__cause__`` is the error that stopped it.
    """

    report: ImportReport | None = None


class CheckpointMismatchError(ValidationError):
    """The checkpoint was written by a job with other settings, other input, or another account."""


class CheckpointUnavailableError(SendKitError):
    """The checkpoint store could not be read or written (a disk or Redis error), so the job stopped."""


class NotACheckpointError(SendKitError):
    """What the store holds for this job is not a sendkit_async checkpoint."""


class JobLeaseHeldError(SendKitError):
    """Another process holds the job: it is running there now (or died less than a lease ago)."""

    def __init__(self, job: str, holder: Holder) -> None:
        super().__init__(
            f"job {job!r} is running on {holder.describe()}; "
            "pass lease_wait=... to wait for that run to end and take the job over"
        )
        self.job = job
        self.holder = holder


class JobLeaseLostError(SendKitError):
    """This process lost its lease on the job (it could not renew it in time), so it stopped."""


class CheckpointLostError(JobLeaseLostError):
    """The store lost the job's lease and its checkpoint (a restart without its data, a flush).

    The job stops at once, before it writes records no header explains; a
    rerun starts the job over, and entries the server already holds come
    back as duplicates, so the reports still account for every entry.
    """

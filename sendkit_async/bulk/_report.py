"""What a bulk import reports: per batch, cumulative progress, and the final report.

Every :class:`BatchResult` accounts for one contiguous span of the input, so
each one, and any sum of them, keeps the invariant
``read == rejected + duplicates + imported + skipped + failed``.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "BatchResult",
    "FailedEntry",
    "FailureKind",
    "ImportProgress",
    "ImportReport",
    "RejectedEntry",
]


class FailureKind(str, enum.Enum):
    """Why an entry that passed client-side validation did not land."""

    REJECTED_BY_SERVER = "rejected_by_server"
    """The API refused it (400/422) even alone in a batch; resending will not help."""
    GAVE_UP = "gave_up"
    """Transient failures (5xx, 429, dropped connections) outlasted the retries."""
    NOT_SENT = "not_sent"
    """The job stopped before its batch landed: never sent, or refused by the very error that
    stopped the job (a 401, say). It is not on the list; a rerun sends it."""
    INTERRUPTED = "interrupted"
    """A request of its batch was cut off unanswered (a cancelled job): it may or may not have landed."""


@attrs.frozen
class RejectedEntry:
    """An input item that failed client-side validation and was never sent.

    Attributes:
        position: 0-based index in the input.
        value: the item as given (shortened to 200 characters).
        reason: what is wrong with it.
    """

    position: int
    value: str
    reason: str


@attrs.frozen
class FailedEntry:
    """A valid entry that did not land.

    Attributes:
        position: 0-based index in the input.
        email: the normalised address or domain.
        kind: the failure category.
        reason: the server's message or the error that ended the attempts.
    """

    position: int
    email: str
    kind: FailureKind
    reason: str


@attrs.frozen
class BatchResult:
    """The outcome of one batch and of the input span it covers.

    Attributes:
        index: the batch's sequence number in the job (0-based).
        start, end: the input positions it covers, ``[start, end)``.
        sent: entries in the batch (after validation and dedupe).
        imported, skipped: the server's counts, summed over any split requests.
        domains: how many of the entries that landed (imported or skipped)
            are whole domains, ``type: domain`` (the server counts both types together).
        rejected: items in the span that failed client-side validation.
        duplicates: repeats in the span dropped client-side.
        failed: entries that did not land, with reasons.
        requests, retries, rate_limited: HTTP attempts spent on this batch.
        resumed: taken from a checkpoint instead of being sent again.
    """

    index: int
    start: int
    end: int
    sent: int
    imported: int = 0
    skipped: int = 0
    rejected: tuple[RejectedEntry, ...] = ()
    duplicates: int = 0
    failed: tuple[FailedEntry, ...] = ()
    domains: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    resumed: bool = False

    @property
    def read(self) -> int:
        """Input items in the span."""
        return self.end - self.start

    @property
    def landed(self) -> bool:
        """Whether nothing in it is worth resending (no transient or stop failures)."""
        return all(f.kind is FailureKind.REJECTED_BY_SERVER for f in self.failed)


@attrs.frozen
class ImportProgress:
    """Cumulative counts, handed to ``on_progress`` after every batch.

    ``concurrency`` is the job's in-flight limit when the counts were taken
    (with ``concurrency="auto"`` it moves with the server's latency).
    """

    read: int
    rejected: int
    duplicates: int
    imported: int
    skipped: int
    failed: int
    batches: int
    requests: int
    retries: int
    rate_limited: int
    elapsed: float
    concurrency: int = 0

    @property
    def entries_per_second(self) -> float:
        """Input items accounted for per second so far."""
        return self.read / self.elapsed if self.elapsed > 0 else 0.0


@attrs.frozen
class ImportReport:
    """The account of a whole import job.

    ``read == len(rejected) + duplicates + imported + skipped + len(failed)``
    holds for every job, whatever failed.

    Attributes:
        domains: how many of the entries imported or skipped are whole
            domains (``type: domain``); the rest are single addresses.
        stopped_at: when a fatal error stopped the job, the input position of
            the first item it never read (``None`` when it read to the end):
            items before it are all in this account, items from it on were
            never looked at. Rerunning with the same checkpoint resumes.
    """

    read: int
    rejected: tuple[RejectedEntry, ...]
    duplicates: int
    imported: int
    skipped: int
    failed: tuple[FailedEntry, ...]
    batches: int
    requests: int
    retries: int
    rate_limited: int
    elapsed: float
    resumed_batches: int = 0
    stopped_at: int | None = None
    domains: int = 0

    @property
    def entries_per_second(self) -> float:
        """Input items accounted for per second."""
        return self.read / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def not_sent(self) -> tuple[FailedEntry, ...]:
        """Entries the job never sent (or whose fate is unknown) because it stopped."""
        stopped = {FailureKind.NOT_SENT, FailureKind.INTERRUPTED}
        return tuple(f for f in self.failed if f.kind in stopped)

    @property
    def ok(self) -> bool:
        """Whether every entry read was imported, skipped or a duplicate."""
        return not self.rejected and not self.failed

    @property
    def balanced(self) -> bool:
        """Whether the accounting invariant holds (it always should)."""
        accounted = len(self.rejected) + self.duplicates + self.imported + self.skipped + len(self.failed)
        return self.read == accounted


@attrs.define
class ReportBuilder:
    """Folds batch results into progress snapshots and the final report."""

    read: int = 0
    duplicates: int = 0
    imported: int = 0
    skipped: int = 0
    batches: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    resumed: int = 0
    domains: int = 0
    rejected: list[RejectedEntry] = attrs.Factory(list)
    failed: list[FailedEntry] = attrs.Factory(list)

    def add(self, result: BatchResult) -> None:
        """Count one batch."""
        self.read += result.read
        self.duplicates += result.duplicates
        self.imported += result.imported
        self.skipped += result.skipped
        self.batches += result.sent > 0
        self.requests += result.requests
        self.retries += result.retries
        self.rate_limited += result.rate_limited
        self.resumed += result.resumed
        self.domains += result.domains
        self.rejected.extend(result.rejected)
        self.failed.extend(result.failed)

    def progress(self, elapsed: float, concurrency: int = 0) -> ImportProgress:
        """The counts so far."""
        return ImportProgress(
            concurrency=concurrency,
            read=self.read,
            rejected=len(self.rejected),
            duplicates=self.duplicates,
            imported=self.imported,
            skipped=self.skipped,
            failed=len(self.failed),
            batches=self.batches,
            requests=self.requests,
            retries=self.retries,
            rate_limited=self.rate_limited,
            elapsed=elapsed,
        )

    def report(self, elapsed: float, *, stopped: bool = False) -> ImportReport:
        """The final report, entries sorted by input position.

        ``stopped``: the job ended early, so the report says where reading
        stopped. Batches cover the input in contiguous spans, and every batch
        read is accounted for (landed, failed or not sent): the count read is
        that position.
        """
        return ImportReport(
            read=self.read,
            rejected=tuple(sorted(self.rejected, key=lambda r: r.position)),
            duplicates=self.duplicates,
            imported=self.imported,
            skipped=self.skipped,
            failed=tuple(sorted(self.failed, key=lambda f: f.position)),
            batches=self.batches,
            requests=self.requests,
            retries=self.retries,
            rate_limited=self.rate_limited,
            elapsed=elapsed,
            resumed_batches=self.resumed,
            stopped_at=self.read if stopped else None,
            domains=self.domains,
        )

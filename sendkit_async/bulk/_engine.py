"""The concurrent import engine.

A producer turns the input into batches (see :mod:`._prepare`); ``concurrency``
workers send them through :func:`sendkit_async.dnc.import_entries`, the same
coroutine as a single call, on a session copy in the budget's bulk lane (so
the client's rate budget paces them with every other call). Each batch gets
its own copy with a :class:`~sendkit_async._session.CallStats` to count its
requests, retries and 429s. Retries stay in the session; the engine only
decides what to do with a batch that still failed: split it on 400/413/422,
report it as failed on transient errors, stop the job on fatal ones.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Final, TypedDict

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from sendkit_async import dnc
from sendkit_async._budget import Lane, RateCap, Shape
from sendkit_async._config import (
    DEFAULT_BULK_RATE_LIMIT_RETRIES,
    DEFAULT_BULK_RETRIES,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_SPLIT_REQUESTS,
)
from sendkit_async._errors import (
    APIStatusError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    SendKitError,
    UnexpectedResponseError,
    ValidationError,
)
from sendkit_async._flow import AdaptiveLimit, Concurrency, InFlight, check_concurrency
from sendkit_async._session import CallStats, Session
from sendkit_async._tracing import job_span
from sendkit_async._types import NOT_GIVEN
from sendkit_async._validate import check_seconds, check_whole
from sendkit_async.dnc import PreparedEntries
from sendkit_async.models import DncReason, EntryType, EntryTypeOption, _reason, entry_type_option

from ._checkpoint import Checkpoint, checkpoint_for, is_store_url, is_unknown_url
from ._errors import ImportAbortedError
from ._lease import check_job_name
from ._prepare import Batch, Batcher, EntrySource, check_source, landed_domains
from ._report import (
    BatchResult,
    FailedEntry,
    FailureKind,
    ImportProgress,
    ImportReport,
    ReportBuilder,
)
from ._stores import CheckpointStore

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_BATCH_BYTES",
    "ImportJob",
    "ImportOptions",
    "ImportSettings",
    "ProgressCallback",
    "import_bulk",
    "resolve_options",
]

MIN_BATCH_BYTES: Final = 1024
SPLIT_STATUSES: Final = frozenset({400, 413, 422})
FATAL_ERRORS: Final = (AuthenticationError, PermissionDeniedError, NotFoundError, UnexpectedResponseError)


def _whole(minimum: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator: a whole number of at least ``minimum``."""

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check_whole(attribute.name, value, minimum=minimum)

    return validate


def _rate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 and math.isfinite(value))
    ):
        raise ValidationError(
            f"{attribute.name} must be a positive number of requests per second, got {value!r}"
        )


def _flag(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(f"{attribute.name} must be True or False, got {value!r}")


def _checkpoint(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None or is_store_url(value) or isinstance(value, CheckpointStore):
        return
    if is_unknown_url(value):
        raise ValidationError(
            f"{attribute.name} {value!r:.60} looks like a URL of no store the SDK knows: use redis://, "
            "rediss://, unix://, redis+cluster:// or redis+sentinel:// (or a file path)"
        )
    if not isinstance(value, (str, os.PathLike)):
        raise ValidationError(
            f"{attribute.name} must be a file path, a redis:// URL or a checkpoint store, "
            f"got {type(value).__name__}"
        )
    if os.path.isdir(value):  # noqa: PTH112 - a str or PathLike alike
        raise ValidationError(f"{attribute.name} {os.fspath(value)!r} is a directory; give a file path")


def _concurrency(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_concurrency(value, attribute.name)


def _job(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_job_name(value)


def _wait(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_seconds(attribute.name, value, finite=False)  # math.inf: wait as long as it takes


def _optional_wait(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_seconds(attribute.name, value)


def _type_option(value: object) -> EntryTypeOption:
    forced = entry_type_option(value)
    if forced is None:
        return "auto"
    return "email" if forced is EntryType.EMAIL else "domain"


@attrs.frozen
class ImportOptions:
    """The settings of one bulk job: ``import_bulk``, ``iter_import`` and ``validate_bulk`` take them.

    Pass one as ``options=`` (and reuse it across jobs), or give any of its
    fields as keywords (:class:`ImportSettings`); keywords override the
    object's fields. ``validate_bulk`` reads only the fields that decide
    the batches (``batch_size``, ``max_batch_bytes``, ``dedupe``, ``reason``, ``type``).

    Attributes:
        batch_size: entries per request, 1..10,000.
        max_batch_bytes: the bound on one request body (bytes of JSON).
        concurrency: requests in flight: ``"auto"`` (the default) keeps
            about the rate the budget allows times the latency observed,
            less when the server slows as more arrive, and at most the
            client's ``max_concurrency``; a number is a fixed cap. With
            ``"auto"``, a budget that has heard no answer yet first learns
            the key's rate from one ``GET /v1/dnc?limit=1``.
        max_rate: requests per second at most (``None``: as the server allows).
        dedupe: drop repeats of an address within the job, as duplicates.
        reason: the reason for items that give none (default ``import``).
        type: the type of items that state none: ``"email"`` (each is an
            address; one without ``@`` is rejected as looking like a domain),
            ``"domain"`` (each is a whole domain), or ``"auto"`` (the
            default: with ``@`` an address, without it a domain). Pass
            ``"email"`` for a list of addresses, so that a stray
            ``gmail.com`` cannot block a whole domain.
        checkpoint: where landed batches are recorded, so that running the
            same job again skips them: a file path, or a store shared by
            every host (a ``redis://`` URL or :class:`RedisCheckpoints`, with
            ``job``). It never holds the API key. While the job runs it holds
            a lease on the checkpoint, so a second run of the same job
            refuses to start (:class:`JobLeaseHeldError`) instead of doubling
            the load; a job killed on one host resumes on another.
        job: the job's name in a checkpoint store (1-200 printable
            characters, no spaces): the same name resumes the same job.
        lease_wait: seconds to wait for another run's lease on the job to
            end (0 refuses at once; ``math.inf`` waits as long as it runs).
        max_retries: transient retries per request.
        max_rate_limit_retries: 429 retries per request.
        max_split_requests: requests at most spent splitting batches the
            server refused (400/413/422) down to their bad entries.
        max_queue_wait: the longest one batch request waits for its slots in
            the rate budget before it fails (``gave_up``, with a
            :class:`BudgetTimeoutError` as its reason). ``None``, the default:
            as long as it takes, since a job's batches queue behind each other
            (and behind interactive calls) by design.

    Raises:
        ValidationError: a setting of the wrong type or out of range.
    """

    batch_size: int = attrs.field(default=dnc.MAX_IMPORT_ENTRIES, validator=_whole(1))
    max_batch_bytes: int = attrs.field(default=DEFAULT_MAX_BATCH_BYTES, validator=_whole(0))
    concurrency: Concurrency = attrs.field(default=DEFAULT_CONCURRENCY, validator=_concurrency)
    max_rate: float | None = attrs.field(default=None, validator=_rate)
    dedupe: bool = attrs.field(default=True, validator=_flag)
    reason: DncReason | None = attrs.field(default=None, converter=attrs.converters.optional(_reason))
    type: EntryTypeOption = attrs.field(default="auto", converter=_type_option)
    checkpoint: str | os.PathLike[str] | CheckpointStore | None = attrs.field(
        default=None, validator=_checkpoint
    )
    job: str | None = attrs.field(default=None, validator=_job)
    lease_wait: float = attrs.field(default=0.0, validator=_wait)
    max_retries: int = attrs.field(default=DEFAULT_BULK_RETRIES, validator=_whole(0))
    max_rate_limit_retries: int = attrs.field(default=DEFAULT_BULK_RATE_LIMIT_RETRIES, validator=_whole(0))
    max_split_requests: int = attrs.field(default=DEFAULT_MAX_SPLIT_REQUESTS, validator=_whole(0))
    max_queue_wait: float | None = attrs.field(default=None, validator=_optional_wait)

    @batch_size.validator
    def _check_batch_size(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if not 1 <= value <= dnc.MAX_IMPORT_ENTRIES:
            raise ValidationError(
                f"batch_size must be between 1 and {dnc.MAX_IMPORT_ENTRIES:,}, got {value!r}"
            )

    @max_batch_bytes.validator
    def _check_bytes(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if value < MIN_BATCH_BYTES:
            raise ValidationError(f"max_batch_bytes must be at least {MIN_BATCH_BYTES}, got {value!r}")

    def __attrs_post_init__(self) -> None:
        in_store = self.checkpoint is not None and (
            is_store_url(self.checkpoint) or isinstance(self.checkpoint, CheckpointStore)
        )
        if in_store and self.job is None:
            raise ValidationError("a checkpoint in a store needs a job name: pass job='...'")
        if self.job is not None and not in_store:
            raise ValidationError(
                "job= names a job in a checkpoint store (a redis:// URL or RedisCheckpoints); "
                "a checkpoint file is its own job"
            )

    def batcher(self) -> Batcher:
        """The validator and batcher these settings describe."""
        return Batcher(
            self.batch_size, self.max_batch_bytes, self.dedupe, self.reason, entry_type_option(self.type)
        )

    def settings(self) -> dict[str, Any]:
        """What decides how input becomes batches (a checkpoint must match it)."""
        reason = None if self.reason is None else self.reason.value
        return {
            "batch_size": self.batch_size,
            "max_batch_bytes": self.max_batch_bytes,
            "dedupe": self.dedupe,
            "reason": reason,
            # Left out when "auto", so a checkpoint from before the setting still matches.
            **({} if self.type == "auto" else {"type": self.type}),
        }


class ImportSettings(TypedDict, total=False):
    """:class:`ImportOptions`' fields as keywords (a test keeps the two in step)."""

    batch_size: int
    max_batch_bytes: int
    concurrency: Concurrency
    max_rate: float | None
    dedupe: bool
    reason: DncReason | str | None
    type: EntryTypeOption
    checkpoint: str | os.PathLike[str] | CheckpointStore | None
    job: str | None
    lease_wait: float
    max_retries: int
    max_rate_limit_retries: int
    max_split_requests: int
    max_queue_wait: float | None


def resolve_options(options: ImportOptions | None, settings: ImportSettings) -> ImportOptions:
    """``options`` (or the defaults) with ``settings`` laid over them, validated.

    Raises:
        ValidationError: a setting out of range, of the wrong type, or unknown.
    """
    if options is not None and not isinstance(options, ImportOptions):
        raise ValidationError(f"options must be an ImportOptions, got {type(options).__name__}")
    unknown = set(settings) - set(attrs.fields_dict(ImportOptions))
    if unknown:
        raise ValidationError(f"unknown import setting(s): {', '.join(sorted(unknown))}")
    base = options if options is not None else ImportOptions()
    return attrs.evolve(base, **settings) if settings else base


class _Stopped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a worker once the job has stopped."""


class ImportJob:
    """One bulk import; iterate :meth:`results` to run it."""

    def __init__(self, session: Session, source: EntrySource, options: ImportOptions) -> None:
        check_source(source)
        self._options = options
        self._source = source
        retry = attrs.evolve(
            session.config.retry,
            max_retries=options.max_retries,
            max_rate_limit_retries=options.max_rate_limit_retries,
            max_queue_wait=options.max_queue_wait,
        )
        budget = (
            NOT_GIVEN
            if options.max_rate is None
            else RateCap(session.budget, options.max_rate, clock=session.clock)
        )
        self._flow: InFlight = session.in_flight(options.concurrency)
        self._session = session.with_options(retry=retry, lane=Lane.BULK, budget=budget, flow=self._flow)
        self._batcher = options.batcher()
        self._checkpoint: Checkpoint | None = None
        self._pending: dict[int, Batch] = {}
        self._started: set[int] = set()
        self._fatal: BaseException | None = None
        self._task_group: TaskGroup | None = None
        self._probe_lock = anyio.Lock()
        self._probed = False

    async def results(self) -> AsyncGenerator[BatchResult, None]:
        """Run the job, yielding each batch's result as it completes (not in input order).

        Raises:
            ImportAbortedError: after yielding the results of every batch that
                was not sent (their entries failed as ``not_sent`` or
                ``interrupted``), when a fatal error stopped the job.
        """
        send, receive = anyio.create_memory_object_stream[BatchResult](math.inf)
        closed_early = False
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self._run, send)
            async with receive:
                try:
                    async for result in receive:
                        yield result
                except GeneratorExit:
                    # The consumer closed us: cancel the job and return quietly,
                    # rather than leak GeneratorExit into the task group.
                    closed_early = True
                    task_group.cancel_scope.cancel()
        if closed_early:
            return
        if self._fatal is not None:
            raise ImportAbortedError(f"the import stopped: {self._fatal}") from self._fatal

    async def _run(self, out: MemoryObjectSendStream[BatchResult]) -> None:
        async with out:
            completed = False
            try:
                await self._open_checkpoint()
                async with anyio.create_task_group() as lease:
                    if self._checkpoint is not None:
                        lease.start_soon(self._hold, self._checkpoint)
                    try:
                        await self._send_all(out)
                    finally:
                        lease.cancel_scope.cancel()
                completed = self._fatal is None
            except SendKitError as exc:  # the checkpoint could not be used, or its job is held
                self._fatal = exc
            finally:
                if self._checkpoint is not None:
                    # Close even while a cancellation unwinds the job.
                    with anyio.CancelScope(shield=True):
                        await self._checkpoint.close(completed=completed)
            if self._fatal is not None:
                with contextlib.suppress(anyio.BrokenResourceError):  # the consumer may be gone
                    for batch in sorted(self._pending.values(), key=lambda b: b.index):
                        out.send_nowait(self._unsent(batch))

    @property
    def concurrency(self) -> int:
        """The job's in-flight limit now."""
        return self._flow.limit

    async def _send_all(self, out: MemoryObjectSendStream[BatchResult]) -> None:
        """Batch the input and send it, as many batches at a time as the in-flight limit allows.

        A worker takes its slot before it takes a batch, so the batches in
        memory are about the requests in flight.
        """
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            send, receive = anyio.create_memory_object_stream[Batch](0)
            task_group.start_soon(self._produce, send)
            workers = self._flow.max_limit if isinstance(self._flow, AdaptiveLimit) else self._flow.limit
            async with receive:
                for _ in range(workers):
                    task_group.start_soon(self._work, receive.clone(), out.clone())

    async def _probe(self) -> None:
        """Learn the key's rate from one light call before the first batch, when the budget knows nothing.

        A budget that has heard no answer lets one request out at a time, so
        without this the job's first batch (which may take seconds) would
        hold every other one back for its whole round trip. The call is
        ``GET /v1/dnc?limit=1``, made once, when the first batch is about to
        go (a job that resumes everything sends nothing); a failure is left
        to the batches to meet, except a fatal one (a bad key), which stops
        the job before it sends.
        """
        async with self._probe_lock:
            if self._probed:
                return
            self._probed = True
            if self._options.concurrency != "auto" or self._session.budget.snapshot().shape != Shape.UNKNOWN:
                return
            once = attrs.evolve(self._session.config.retry, max_retries=0, max_rate_limit_retries=0)
            try:
                await dnc.get_page(self._session.with_options(retry=once), limit=1)
            except FATAL_ERRORS as exc:
                self._stop(exc)
                raise _Stopped from exc
            except SendKitError:
                pass

    async def _open_checkpoint(self) -> None:
        options = self._options
        if options.checkpoint is None:
            return
        settings = {**options.settings(), "account": self._session.config.key_id}
        checkpoint = checkpoint_for(options.checkpoint, options.job, settings, self._session.clock)
        await checkpoint.open(wait=options.lease_wait)
        self._checkpoint = checkpoint

    async def _hold(self, checkpoint: Checkpoint) -> None:
        try:
            await checkpoint.keep()
        except SendKitError as exc:  # the lease is lost: another worker may run the job now
            self._stop(exc)

    def _stop(self, cause: BaseException) -> None:
        if self._fatal is None:
            self._fatal = cause
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    async def _produce(self, send: MemoryObjectSendStream[Batch]) -> None:
        async with send:
            try:
                async for batch in self._batcher.batches(self._source):
                    self._pending[batch.index] = batch
                    await send.send(batch)
            except Exception as exc:  # noqa: BLE001 - a failing input stops the job, reported
                self._stop(exc)

    async def _work(
        self, batches: MemoryObjectReceiveStream[Batch], out: MemoryObjectSendStream[BatchResult]
    ) -> None:
        async with batches, out:
            while True:
                async with self._flow.slot():
                    try:
                        batch = await batches.receive()
                    except anyio.EndOfStream:
                        return
                    self._started.add(batch.index)
                    try:
                        result = await self._process(batch)
                    except _Stopped:
                        return
                    except Exception as exc:  # noqa: BLE001 - stop the job, reported, rather than crash it
                        self._stop(exc)
                        return
                if self._checkpoint is not None and result.landed and not result.resumed:
                    try:
                        await self._checkpoint.record(batch, result)
                    except Exception as exc:  # noqa: BLE001 - e.g. the disk is full, or the lease lost
                        self._stop(exc)  # the batch landed all the same: report it, then stop
                # No await from here on: a result is either emitted or left pending.
                del self._pending[batch.index]
                try:
                    out.send_nowait(result)
                except anyio.BrokenResourceError:
                    return  # the consumer is gone (cancelled or closed early): nobody to tell

    async def _process(self, batch: Batch) -> BatchResult:
        if self._checkpoint is not None:
            try:
                resumed = self._checkpoint.resume(batch)
            except SendKitError as exc:
                self._stop(exc)
                raise _Stopped from exc
            if resumed is not None:
                return resumed
        counts = CallStats()
        imported = skipped = 0
        failed: list[FailedEntry] = []
        if batch.entries:
            await self._probe()
            session = self._session.with_options(stats=counts)
            imported, skipped, failed = await self._send(session, batch.positions, batch.entries, [0])
        return BatchResult(
            index=batch.index,
            start=batch.start,
            end=batch.end,
            sent=len(batch.entries),
            imported=imported,
            skipped=skipped,
            rejected=tuple(batch.rejected),
            duplicates=batch.duplicates,
            failed=tuple(failed),
            domains=landed_domains(batch, failed),
            requests=counts.requests,
            retries=counts.retries,
            rate_limited=counts.rate_limited,
        )

    async def _send(
        self, session: Session, positions: list[int], entries: PreparedEntries, splits: list[int]
    ) -> tuple[int, int, list[FailedEntry]]:
        """Import ``entries``, halving on a refusal until the bad ones stand alone."""
        try:
            result = await dnc.import_entries(session, entries)
        except FATAL_ERRORS as exc:
            self._stop(exc)
            raise _Stopped from exc
        except APIStatusError as exc:
            if exc.status not in SPLIT_STATUSES:
                return 0, 0, self._failed(positions, entries, FailureKind.GAVE_UP, str(exc))
            if len(entries) == 1 or splits[0] >= self._options.max_split_requests:
                return 0, 0, self._failed(positions, entries, FailureKind.REJECTED_BY_SERVER, exc.message)
            splits[0] += 2
            half = len(entries) // 2
            left = await self._send(session, positions[:half], entries[:half], splits)
            right = await self._send(session, positions[half:], entries[half:], splits)
            return left[0] + right[0], left[1] + right[1], left[2] + right[2]
        except SendKitError as exc:  # no answer after the retries
            return 0, 0, self._failed(positions, entries, FailureKind.GAVE_UP, str(exc))
        return result.imported, result.skipped, []

    @staticmethod
    def _failed(
        positions: list[int], entries: PreparedEntries, kind: FailureKind, reason: str
    ) -> list[FailedEntry]:
        return [
            FailedEntry(p, email, kind, reason) for p, email in zip(positions, entries.emails, strict=True)
        ]

    def _unsent(self, batch: Batch) -> BatchResult:
        kind = FailureKind.INTERRUPTED if batch.index in self._started else FailureKind.NOT_SENT
        reason = f"the job stopped before this batch finished: {self._fatal}"
        return BatchResult(
            index=batch.index,
            start=batch.start,
            end=batch.end,
            sent=0,
            rejected=tuple(batch.rejected),
            duplicates=batch.duplicates,
            failed=tuple(self._failed(batch.positions, batch.entries, kind, reason)),
        )


ProgressCallback = Callable[[ImportProgress], "Awaitable[None] | None"]


async def import_bulk(
    session: Session, source: EntrySource, options: ImportOptions, on_progress: ProgressCallback | None
) -> ImportReport:
    """Run a whole job and fold its batch results into an :class:`ImportReport`."""
    clock = session.clock
    started = clock.monotonic()
    builder = ReportBuilder()
    job = ImportJob(session, source, options)
    with job_span("dnc.import_bulk") as span:
        try:
            async with contextlib.aclosing(job.results()) as results:
                async for result in results:
                    builder.add(result)
                    if on_progress is not None:
                        outcome = on_progress(builder.progress(clock.monotonic() - started, job.concurrency))
                        if inspect.isawaitable(outcome):
                            await outcome
        except ImportAbortedError as exc:
            exc.report = builder.report(clock.monotonic() - started, stopped=True)
            raise
        except anyio.get_cancelled_exc_class() as exc:
            # The cancellation carries the account of what landed before it.
            exc.report = builder.report(clock.monotonic() - started)  # type: ignore[attr-defined]
            raise
        finally:
            progress = builder.progress(clock.monotonic() - started, job.concurrency)
            span.update({f"sendkit.{name}": value for name, value in attrs.asdict(progress).items()})
    return builder.report(clock.monotonic() - started)

"""The concurrent import engine: :class:`ImportOptions`, the :class:`ImportJob`, and its two faces.

:func:`import_bulk` runs a job in the caller's task and returns its report;
:func:`iter_import` hands its results out as an :class:`ImportStream`, the job
running in the client's background (so the stream is safe to leave).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any, Final, TypedDict

import anyio
import attrs

from sendkit_async import dnc
from sendkit_async._budget import BudgetSnapshot, Lane, Observation, Permit, RateBudget, RateCap, Shape
from sendkit_async._config import (
    DEFAULT_BULK_MAX_REFUSED_FOR,
    DEFAULT_BULK_RATE_LIMIT_RETRIES,
    DEFAULT_BULK_RETRIES,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_SPLIT_REQUESTS,
)
from sendkit_async._errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ClientClosedError,
    ClientLoopError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    SendKitError,
    UnexpectedResponseError,
    ValidationError,
)
from sendkit_async._fanout import beside, fan_out, in_child_task
from sendkit_async._flow import Concurrency, InFlight, check_concurrency
from sendkit_async._hooks import Attempt
from sendkit_async._scope import ClientScope
from sendkit_async._session import Session
from sendkit_async._stream import Stream
from sendkit_async._tracing import job_span
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
    "ImportStream",
    "ProgressCallback",
    "import_bulk",
    "iter_import",
    "resolve_options",
]

MIN_BATCH_BYTES: Final = 1024
SPLIT_STATUSES: Final = frozenset({400, 413, 422})
# What no retry of any batch can mend: the job stops, reporting what it did not send.
FATAL_ERRORS: Final = (
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    UnexpectedResponseError,
    ClientClosedError,
    ClientLoopError,
)


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
    path = os.fspath(value)
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise ValidationError(f"{attribute.name} must name a file, got {value!r:.60}")
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
        max_refused_for: a batch answered nothing but 429s for this many
            seconds in a row fails (``gave_up``), so a key the server refuses
            everything ends the job in about this long rather than hours
            (``None``: only ``max_rate_limit_retries`` bounds it).

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
    max_refused_for: float | None = attrs.field(
        default=DEFAULT_BULK_MAX_REFUSED_FOR, validator=_optional_wait
    )

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
    max_refused_for: float | None


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


ProgressCallback = Callable[[ImportProgress], "Awaitable[None] | None"]
Emit = Callable[[BatchResult, ImportProgress], Awaitable[None]]
"""Where a job hands each batch's result, with the progress as of that result."""


@attrs.define(eq=False)
class _Counts:
    """The HTTP attempts one batch spent, counted as they leave (a hook of its session).

    Counted when sent, not when answered, so a batch cut short still owns up
    to every request that may have reached the server; ``on_the_wire`` is
    how many are out now.
    """

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    on_the_wire: int = 0
    cut: int = 0  # attempts cut off before their answer: their fate is unknown
    answered: int = 0  # attempts the server answered (any status)

    @contextlib.contextmanager
    def attempt(self, attempt: Attempt) -> Iterator[None]:
        """Count one attempt, and whether a limiter refused it."""
        self.requests += 1
        self.retries += attempt.number > 1
        self.on_the_wire += 1
        try:
            yield
        except BaseException:
            self.cut += 1
            raise
        finally:
            self.on_the_wire -= 1
        self.answered += attempt.answered
        self.rate_limited += attempt.answered and attempt.refused


class _JobStoppedError(Exception):
    """Raised to a batch that asks the budget for an attempt after its job stopped (control flow)."""


class _StopGate:
    """The job's budget: the client's, refusing every new attempt once the job has stopped.

    So a stop the job decides (a 401, a lost lease) lets the attempts already
    on the wire finish and count, and sends nothing more.
    """

    __slots__ = ("_inner", "stopped")

    def __init__(self, inner: RateBudget) -> None:
        self._inner = inner
        self.stopped = False

    def bind(self, key_id: str) -> None:
        """The client bound the budget under it already."""
        self._inner.bind(key_id)

    async def acquire(self, lane: Lane) -> Permit:
        """The inner budget's permit, unless the job stopped (before or while waiting for it)."""
        self._refuse_if_stopped()
        permit = await self._inner.acquire(lane)
        if self.stopped:
            now = time.time()
            await self._inner.observe(permit, Observation.of(None, sent_at=now, received_at=now))
            raise _JobStoppedError
        return permit

    def _refuse_if_stopped(self) -> None:
        if self.stopped:
            raise _JobStoppedError

    async def observe(self, permit: Permit, observation: Observation) -> None:
        """Tell the inner budget."""
        await self._inner.observe(permit, observation)

    def snapshot(self) -> BudgetSnapshot:
        """The inner budget's state."""
        return self._inner.snapshot()


@attrs.define(eq=False)
class _Sending:
    """A batch while it is being sent: its counts, and which of its entries have already landed."""

    batch: Batch
    counts: _Counts = attrs.Factory(_Counts)
    imported: int = 0
    skipped: int = 0
    landed: set[int] = attrs.Factory(set)  # input positions the server answered 2xx for
    refused: list[FailedEntry] = attrs.Factory(list)  # refused by the server, split down to themselves
    scope: anyio.CancelScope | None = None  # its call in the fan-out, while it runs


class ImportJob:
    """One bulk import: :meth:`run` sends it, and every batch's outcome is folded into :meth:`report`.

    The input is read lazily into batches (:mod:`._prepare`); the batches are
    sent through :func:`~sendkit_async._fanout.fan_out`, as many at once as
    the in-flight limit allows, each through
    :func:`sendkit_async.dnc.import_entries`, the same coroutine as a single
    call, on a session copy in the budget's bulk lane. Retries stay in the
    session; the job decides what to do with a batch that still failed:
    split it on 400/413/422, report it as failed on transient errors, stop
    on fatal ones. A batch whose last attempt could not connect at all
    (refused, no such host: ``APIConnectionError.connected`` is false),
    before the server had answered any attempt of the job, stops the job too
    (``ImportAbortedError`` from that error): a server that cannot be reached
    would fail every batch in turn, each after its whole retry schedule. A
    dropped connection, or any failure once the server has answered, fails
    only its batch.

    Whatever stops it (a fatal error, a lost lease, a cancellation), every
    batch it read is in the report: what landed (a 2xx, even for part of a
    split batch), what the server refused, and the rest as ``interrupted``
    (sent, fate unknown) or ``not_sent``; ``requests`` counts every attempt
    that left.
    """

    def __init__(self, session: Session, source: EntrySource, options: ImportOptions) -> None:
        check_source(source)
        self._options = options
        self._source = source
        retry = attrs.evolve(
            session.config.retry,
            max_retries=options.max_retries,
            max_rate_limit_retries=options.max_rate_limit_retries,
            max_queue_wait=options.max_queue_wait,
            max_refused_for=options.max_refused_for,
        )
        # Each attempt keeps its own limit; a batch's retries are bounded by their counts instead.
        timeout = attrs.evolve(session.config.timeout, call=None)
        self._gate = _StopGate(
            session.budget
            if options.max_rate is None
            else RateCap(session.budget, options.max_rate, clock=session.clock)
        )
        self._flow: InFlight = session.scope.in_flight(options.concurrency)
        self._session = session.with_options(
            timeout=timeout, retry=retry, lane=Lane.BULK, budget=self._gate
        ).with_hooks(self._flow)
        self._clock = session.clock
        self._batcher = options.batcher()
        self._checkpoint: Checkpoint | None = None
        self._sending: dict[int, _Sending] = {}  # batches read and not yet accounted, by index
        self._builder = ReportBuilder()
        self._began: float | None = None
        self._ended: float | None = None
        self.fatal: BaseException | None = None
        self._ended_early = False
        self._reached = False  # whether the server has answered anything in this job
        self._probe_lock = anyio.Lock()
        self._probed = False

    @property
    def concurrency(self) -> int:
        """The job's in-flight limit now."""
        return self._flow.limit

    @property
    def elapsed(self) -> float:
        """Seconds since the job started (until it ended)."""
        if self._began is None:
            return 0.0
        return (self._clock.monotonic() if self._ended is None else self._ended) - self._began

    def report(self) -> ImportReport:
        """The account so far: every batch that finished, and, once the job stopped, every batch it read."""
        stopped = self.fatal is not None or self._ended_early
        return self._builder.report(self.elapsed, stopped=stopped)

    def progress(self) -> ImportProgress:
        """The counts so far."""
        return self._builder.progress(self.elapsed, self.concurrency)

    async def run(self, emit: Emit | None = None) -> None:
        """Run the job to its end: each batch's result is accounted, then handed to ``emit``.

        ``emit`` gets the result and the progress as of that result (so
        every call counts exactly one batch more than the one before).

        A fatal stop (a 401/403/404, an input that raised, a checkpoint of
        another job, a job held elsewhere, a lost lease) is kept in
        :attr:`fatal`, after the batches it left were accounted and emitted.
        A cancellation accounts for them the same way, then goes on.
        """
        self._began = self._clock.monotonic()
        completed = False
        try:
            await self._open_checkpoint()
            keeper = None if self._checkpoint is None else functools.partial(self._hold, self._checkpoint)
            await beside(functools.partial(self._send_all, emit), keeper)
            completed = self.fatal is None
        except ConfigurationError:
            raise  # a setting to fix (a Redis that refuses the password): the call's error, not a stop
        except SendKitError as exc:  # the checkpoint could not be used, or its job is held elsewhere
            self._stop(exc)
        except BaseException:
            # Cancelled, or its reader gone mid-delivery (a stream closed while a result was on
            # its way): either way the job stopped early, and the report says where.
            self._ended_early = True
            raise
        finally:
            self._ended = self._clock.monotonic()
            if self._checkpoint is not None:
                with anyio.CancelScope(shield=True):  # close even while a cancellation unwinds the job
                    await self._checkpoint.close(completed=completed)
            unsent = self._account_the_rest()
        if emit is not None:
            for result in unsent:
                await emit(result, self.progress())

    async def _send_all(self, emit: Emit | None) -> None:
        """Every batch through the fan-out, until the input ends or the job stops (see :meth:`_stop`)."""
        deliver = functools.partial(self._landed, emit)
        async with contextlib.aclosing(self._batches()) as batches:
            await fan_out(batches, self._process, limiter=self._flow, deliver=deliver)

    async def _batches(self) -> AsyncGenerator[Batch, None]:
        """The input's batches, each on the books once read, until the job stops (or the input raises)."""
        try:
            async with contextlib.aclosing(self._batcher.batches(self._source)) as batches:
                async for batch in batches:
                    if self.fatal is not None:
                        return
                    self._sending[batch.index] = _Sending(batch)
                    yield batch
        except Exception as exc:  # noqa: BLE001 - a failing input stops the job, reported
            self._stop(exc)

    def _account_the_rest(self) -> list[BatchResult]:
        """Fold every batch read and not yet accounted into the report (landed parts kept), in input order."""
        rest = [self._cut_short(sending) for _, sending in sorted(self._sending.items())]
        self._sending.clear()
        for result in rest:
            self._builder.add(result)
        return rest

    async def _probe(self) -> None:
        """Learn the key's rate from one light call before the first batch, when the budget knows nothing.

        A budget that has heard no answer lets one request out at a time, so
        without this the job's first batch (which may take seconds) would
        hold every other one back for its whole round trip. The call is
        ``GET /v1/dnc?limit=1``, made once, when the first batch is about to
        go (a job that resumes everything sends nothing). It is only a hint:
        whatever its answer (a 403 or 404 from a key or a proxy that allows
        the import alone, a bad key, no answer), the job goes on without it.
        """
        async with self._probe_lock:
            if self._probed:
                return
            self._probed = True
            if self._options.concurrency != "auto" or self._session.budget.snapshot().shape != Shape.UNKNOWN:
                return
            once = attrs.evolve(self._session.config.retry, max_retries=0, max_rate_limit_retries=0)
            with contextlib.suppress(SendKitError):
                await dnc.get_page(self._session.with_options(retry=once, lane=Lane.BULK), limit=1)

    async def _open_checkpoint(self) -> None:
        options = self._options
        if options.checkpoint is None:
            return
        settings = {**options.settings(), "account": self._session.config.key_id}
        checkpoint = checkpoint_for(options.checkpoint, options.job, settings, self._clock)
        await checkpoint.open(wait=options.lease_wait)
        self._checkpoint = checkpoint

    async def _hold(self, checkpoint: Checkpoint) -> None:
        try:
            await checkpoint.keep()
        except SendKitError as exc:  # the lease is lost: another worker may run the job now
            self._stop(exc)

    def _stop(self, cause: BaseException) -> None:
        """Stop the job: nothing new leaves; what is on the wire finishes and counts; the rest is cut."""
        if self.fatal is None:
            self.fatal = cause
        self._gate.stopped = True
        for sending in self._sending.values():
            if sending.scope is not None and not sending.counts.on_the_wire:
                sending.scope.cancel()

    async def _process(self, batch: Batch) -> BatchResult | None:
        """Send one batch, holding its slot; ``None`` if the job stopped meanwhile (it stays on the books)."""
        sending = self._sending[batch.index]
        if self.fatal is not None:
            return None
        with anyio.CancelScope() as sending.scope:
            return await self._run_batch(sending)
        # Cancelled by a stop: accounted with the rest. (anyio before 4.7 types the scope as
        # never swallowing its cancellation, hence the ignore on the floors.)
        return None  # type: ignore[unreachable,unused-ignore]

    async def _run_batch(self, sending: _Sending) -> BatchResult | None:
        batch = sending.batch
        if self._checkpoint is not None:
            try:
                resumed = self._checkpoint.resume(batch)
            except SendKitError as exc:
                self._stop(exc)
                return None
            if resumed is not None:
                return resumed
        if batch.entries:
            await self._probe()
            session = self._session.with_hooks(sending.counts)
            if not await self._send(session, sending, batch.positions, batch.entries, [0]):
                return None
        return self._result(sending, failed=tuple(sending.refused))

    async def _landed(self, emit: Emit | None, result: BatchResult | None) -> None:
        """Account a finished batch (before any await: never half-booked), then record and emit it."""
        if result is None:
            return
        sending = self._sending.pop(result.index)
        self._reached = self._reached or sending.counts.answered > 0
        self._builder.add(result)
        progress = self.progress()
        if self._checkpoint is not None and result.landed and not result.resumed:
            try:
                await self._checkpoint.record(sending.batch, result)
            except Exception as exc:  # noqa: BLE001 - e.g. the disk is full, or the lease lost
                self._stop(exc)  # the batch landed all the same: it is reported; then stop
        if emit is not None:
            await emit(result, progress)

    async def _send(
        self,
        session: Session,
        sending: _Sending,
        positions: list[int],
        entries: PreparedEntries,
        splits: list[int],
    ) -> bool:
        """Import ``entries``, halving on a refusal until the bad ones stand alone (``False``: stopped)."""
        try:
            result = await dnc.import_entries(session, entries)
        except _JobStoppedError:
            return False
        except SendKitError as exc:
            if (
                isinstance(exc, APIStatusError)
                and not isinstance(exc, FATAL_ERRORS)
                and exc.status in SPLIT_STATUSES
                and len(entries) > 1
                and splits[0] < self._options.max_split_requests
            ):
                splits[0] += 2
                half = len(entries) // 2
                return await self._send(session, sending, positions[:half], entries[:half], splits) and (
                    await self._send(session, sending, positions[half:], entries[half:], splits)
                )
            return self._not_landed(exc, sending, positions, entries)
        sending.imported += result.imported
        sending.skipped += result.skipped
        sending.landed.update(positions)
        return True

    def _not_landed(
        self, exc: SendKitError, sending: _Sending, positions: list[int], entries: PreparedEntries
    ) -> bool:
        """Account entries a call did not land: stop the job (``False``) or fail them (``True``)."""
        unreachable = isinstance(exc, APIConnectionError) and not exc.connected and not self._answered_yet()
        if isinstance(exc, FATAL_ERRORS) or unreachable:
            # What no retry mends; or a server that cannot be reached, which would fail every
            # batch in turn, each after its whole retry schedule.
            self._stop(exc)
            return False
        if isinstance(exc, APIStatusError) and exc.status in SPLIT_STATUSES:
            kind, reason = FailureKind.REJECTED_BY_SERVER, exc.message
        else:  # a status no retry mended, or no answer after the retries
            kind, reason = FailureKind.GAVE_UP, str(exc)
        sending.refused += self._failed(positions, entries, kind, reason)
        return True

    def _answered_yet(self) -> bool:
        """Whether any attempt of this job has had an answer from the server (any status)."""
        return self._reached or any(sending.counts.answered for sending in self._sending.values())

    def _result(self, sending: _Sending, *, failed: tuple[FailedEntry, ...]) -> BatchResult:
        batch, counts = sending.batch, sending.counts
        return BatchResult(
            index=batch.index,
            start=batch.start,
            end=batch.end,
            sent=len(batch.entries),
            imported=sending.imported,
            skipped=sending.skipped,
            rejected=tuple(batch.rejected),
            duplicates=batch.duplicates,
            failed=failed,
            domains=landed_domains(batch, failed),
            requests=counts.requests,
            retries=counts.retries,
            rate_limited=counts.rate_limited,
        )

    def _cut_short(self, sending: _Sending) -> BatchResult:
        """A batch the job stopped in: what landed stays landed; the rest is interrupted or not sent."""
        why = self.fatal if self.fatal is not None else "the job was cancelled"
        reason = f"the job stopped before this batch finished: {why}"
        kind = FailureKind.INTERRUPTED if sending.counts.cut else FailureKind.NOT_SENT
        refused = {entry.position for entry in sending.refused}
        batch = sending.batch
        left = [
            FailedEntry(position, email, kind, reason)
            for position, email in zip(batch.positions, batch.entries.emails, strict=True)
            if position not in sending.landed and position not in refused
        ]
        return self._result(
            sending, failed=tuple(sorted([*sending.refused, *left], key=lambda f: f.position))
        )

    @staticmethod
    def _failed(
        positions: list[int], entries: PreparedEntries, kind: FailureKind, reason: str
    ) -> list[FailedEntry]:
        return [
            FailedEntry(p, email, kind, reason) for p, email in zip(positions, entries.emails, strict=True)
        ]


def _aborted(job: ImportJob) -> ImportAbortedError:
    error = ImportAbortedError(f"the import stopped: {job.fatal}")
    error.report = job.report()
    error.__cause__ = job.fatal
    return error


async def import_bulk(
    session: Session, source: EntrySource, options: ImportOptions, on_progress: ProgressCallback | None
) -> ImportReport:
    """Run a whole job and return its :class:`ImportReport` (``on_progress`` is told after every batch).

    Raises:
        ImportAbortedError: a fatal error stopped it; ``.report`` is the account.
        CancelledError: cancelled; the cancellation carries the account as ``.report``.
    """
    session.scope.enter()  # a closed client, or one of another loop, refuses at once
    job = ImportJob(session, source, options)
    told = anyio.Lock()  # one progress call at a time, in the order batches finish

    async def tell(_result: BatchResult, progress: ImportProgress) -> None:
        if on_progress is None:
            return
        async with told:
            outcome = on_progress(progress)
            if inspect.isawaitable(outcome):
                await outcome

    with job_span("dnc.import_bulk") as span:
        try:
            await in_child_task(functools.partial(job.run, tell))
        except anyio.get_cancelled_exc_class() as exc:
            # The cancellation carries the account of what landed before it.
            exc.report = job.report()  # type: ignore[attr-defined]
            raise
        finally:
            progress = job.progress()
            span.update({f"sendkit.{name}": value for name, value in attrs.asdict(progress).items()})
    if job.fatal is not None:
        raise _aborted(job)
    return job.report()


class ImportStream(Stream[BatchResult]):
    """``client.dnc.iter_import()``: each batch's :class:`BatchResult` as it finishes, safe to leave any time.

    Its :attr:`report` is the job's account so far: every batch that
    finished (read from the stream or not) and, once the job stopped (the
    stream closed early, or a fatal error), every batch it had read, with
    entries that did not land as ``interrupted`` or ``not_sent``. After a
    fatal stop, the stream ends with :class:`ImportAbortedError`.
    """

    __slots__ = ("_job",)

    def __init__(self, scope: ClientScope, job: ImportJob) -> None:
        async def produce(emit: Callable[[BatchResult], Awaitable[None]]) -> None:
            await job.run(lambda result, _progress: emit(result))
            if job.fatal is not None:
                raise _aborted(job)

        super().__init__(scope, produce, buffer=-1)
        self._job = job

    @property
    def report(self) -> ImportReport:
        """The account so far (see the class docstring)."""
        return self._job.report()


def iter_import(session: Session, source: EntrySource, options: ImportOptions) -> ImportStream:
    """The job as a stream of batch results (see :class:`ImportStream`); nothing starts until it is read."""
    return ImportStream(session.scope, ImportJob(session, source, options))

"""The facade users hold: ``SendKit``, with ``client.dnc.*`` and ``client.inbox.*``."""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Concatenate, Generic, TypeVar, cast, overload

import aiohttp
import attrs
from typing_extensions import ParamSpec, Self, Unpack

from . import dnc as _dnc
from . import inbox as _inbox
from ._budget import BudgetSnapshot, Lane, LocalBudget, RateBudget
from ._clock import Clock, SystemClock
from ._config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECTION_LIMIT,
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_QUEUE_WAIT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    MAX_CONCURRENCY,
    MIN_ANSWER_BYTES,
    ClientConfig,
    RetryPolicy,
    Timeout,
)
from ._errors import ConfigurationError, ValidationError
from ._flow import Concurrency
from ._hooks import AttemptHook, LastRateLimit
from ._http import as_timeout, check_headers
from ._logs import configure_from_environment
from ._scope import ClientScope
from ._session import Session
from ._tracing import tracing
from ._transport import AiohttpTransport, AsyncTransport
from ._types import JSON, NOT_GIVEN, NotGiven
from ._validate import check_whole
from .bulk import _engine
from .bulk import _inbox as _bulk_inbox
from .bulk._engine import ImportOptions, ImportSettings, ImportStream
from .bulk._prepare import DryRunReport, EntrySource, dry_run
from .bulk._report import ImportReport
from .models import RateLimit

__all__ = ["DncAPI", "InboxAPI", "SendKit"]

P = ParamSpec("P")
R = TypeVar("R")


class _Endpoint(Generic[P, R]):
    """An endpoint function of :mod:`.dnc` or :mod:`.inbox`, bound to the resource's session.

    The function's signature, validation and docstring are the only ones:
    ``client.dnc.import_entries(entries)`` is ``dnc.import_entries(session,
    entries)``, a real bound method, so ``help()`` and ``inspect.signature()``
    show that endpoint's own docstring and parameters.
    """

    def __init__(self, function: Callable[Concatenate[Session, P], R]) -> None:
        self._function = function
        self.__doc__ = function.__doc__
        self.__name__ = function.__name__
        self.__qualname__ = function.__qualname__
        self.__wrapped__ = function

    @overload
    def __get__(self, resource: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, resource: _Resource, owner: type[Any]) -> Callable[P, R]: ...
    def __get__(self, resource: _Resource | None, owner: type[Any]) -> Self | Callable[P, R]:
        if resource is None:
            return self
        bound = types.MethodType(self._function, resource._session)  # noqa: SLF001 - the resource's own session
        return cast("Callable[P, R]", bound)


class _Resource:
    """A group of endpoints bound to one session."""

    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session


class DncAPI(_Resource):
    """``client.dnc``: the Do Not Contact list.

    The single calls are the functions of :mod:`sendkit_async.dnc`, bound to
    this client; the bulk helpers are below.
    """

    __slots__ = ()

    import_entries = _Endpoint(_dnc.import_entries)
    get_page = _Endpoint(_dnc.get_page)
    pages = _Endpoint(_dnc.iter_pages)
    list = _Endpoint(_dnc.iter_entries)

    async def import_bulk(
        self,
        entries: EntrySource,
        options: ImportOptions | None = None,
        *,
        on_progress: _engine.ProgressCallback | None = None,
        **settings: Unpack[ImportSettings],
    ) -> ImportReport:
        """Import any number of entries: validated, deduplicated, batched and sent concurrently.

        The input (any iterable or async iterable of entries, mappings or
        strings) is read lazily: memory holds about one batch per request in
        flight, plus two, plus the dedupe table (a 128-bit digest of each
        distinct address, 18 to 37 bytes each as its table fills; a collision, which would drop
        a distinct address, has odds of 1.5e-23 at 100,000,000 addresses;
        pass ``dedupe=False`` for constant memory). Batches hold at
        most ``batch_size`` entries and ``max_batch_bytes`` of JSON, go out
        as many at a time as ``concurrency`` allows through the client's
        rate budget (in its bulk lane, paced from the server's answers, one
        shared pause after a 429, and at most ``max_rate`` requests per
        second if given), and are retried by the session on transient
        failures (``max_retries``; 429s have their own
        ``max_rate_limit_retries``). A batch refused with 400/413/422 is
        split in halves until the bad entries stand alone.

        Args:
            entries: the input.
            options: the job's settings as one :class:`ImportOptions` (every
                field is described there); keywords override its fields.
            on_progress: called (or awaited) with an :class:`ImportProgress` after every batch.
            **settings: any field of :class:`ImportOptions`, such as
                ``batch_size=``, ``concurrency=``, ``checkpoint=``, ``job=``,
                or ``type="email"`` for a list of addresses (then a stray
                ``gmail.com`` is rejected instead of blocking a whole domain).

        Returns:
            An :class:`ImportReport` where ``read == rejected + duplicates +
            imported + skipped + failed``. A cancelled import raises the
            cancellation with the report of what landed so far as its
            ``.report``, for the code that awaits it in the same task
            (``except asyncio.CancelledError as exc: save(exc.report); raise``);
            a task awaiting that task gets a fresh cancellation.

        Raises:
            ValidationError: ``batch_size`` outside 1..10,000, or another bad setting.
            ImportAbortedError: a 401/403/404, an input that raised, a
                checkpoint of another job, a job held by another process
                (``__cause__`` is a :class:`JobLeaseHeldError` naming it) or a
                lost lease stopped it; ``.report`` lists what was not sent.

        Example:
            >>> report = await client.dnc.import_bulk(read_lines("dnc.txt"), concurrency=8)  # doctest: +SKIP
            >>> report.imported, report.skipped, len(report.rejected)  # doctest: +SKIP
        """
        job = _engine.resolve_options(options, settings)
        if on_progress is not None and not callable(on_progress):
            raise ValidationError(f"on_progress must be a function or None, got {type(on_progress).__name__}")
        return await _engine.import_bulk(self._session, entries, job, on_progress)

    async def validate_bulk(
        self, entries: EntrySource, options: ImportOptions | None = None, **settings: Unpack[ImportSettings]
    ) -> DryRunReport:
        """Check an input as :meth:`import_bulk` would, sending nothing (a dry run).

        Takes the options of :meth:`import_bulk`; those that decide the
        batches (``batch_size``, ``max_batch_bytes``, ``dedupe``, ``reason``, ``type``)
        shape the report, and every one is validated.
        """
        return await dry_run(entries, _engine.resolve_options(options, settings).batcher())

    def iter_import(
        self, entries: EntrySource, options: ImportOptions | None = None, **settings: Unpack[ImportSettings]
    ) -> ImportStream:
        """Run a bulk import as a stream of each batch's :class:`BatchResult`, as it completes.

        Takes the options of :meth:`import_bulk`. Each result accounts for
        its own span of the input, so summing them gives the report. The job
        runs in the client's background from the first result asked for;
        leave the loop however you like (``break``, an exception, a
        cancellation, a timeout) and the job stops at once, its requests in
        flight cancelled. ``stream.report`` is the account so far, every
        entry read included (those cut short as ``interrupted`` or
        ``not_sent``). After a fatal stop the stream raises
        :class:`ImportAbortedError` once its last results are read.

        Example:
            >>> stream = client.dnc.iter_import(entries)  # doctest: +SKIP
            >>> async for result in stream:  # doctest: +SKIP
            ...     print(result.index, result.imported, len(result.failed))
            ...     if result.failed:
            ...         break
            >>> stream.report.imported  # doctest: +SKIP

        Raises:
            ValidationError: a bad setting or input, at once (nothing is sent).
        """
        job = _engine.resolve_options(options, settings)
        return _engine.iter_import(self._session, entries, job)


class InboxAPI(_Resource):
    """``client.inbox``: conversations.

    The single calls are the functions of :mod:`sendkit_async.inbox`, bound
    to this client; ``update_many`` is the bulk helper.
    """

    __slots__ = ()

    add_leads_to_dnc = _Endpoint(_inbox.add_leads_to_dnc)
    mark_read = _Endpoint(_inbox.mark_read)
    update = _Endpoint(_inbox.update)

    async def update_many(
        self,
        conversation_ids: Sequence[str],
        *,
        mark_read: bool | NotGiven = NOT_GIVEN,
        ai_tag: str | NotGiven | None = NOT_GIVEN,
        tags: Sequence[str] | NotGiven = NOT_GIVEN,
        concurrency: Concurrency = DEFAULT_CONCURRENCY,
    ) -> list[_bulk_inbox.UpdateOutcome]:
        """Apply one update to many conversations; an outcome per id, in order (success or typed error)."""
        return await _bulk_inbox.update_many(
            self._session,
            conversation_ids,
            mark_read=mark_read,
            ai_tag=ai_tag,
            tags=tags,
            concurrency=concurrency,
        )


class SendKit:
    """An asyncio client for the SendKit API.

    Use it as an async context manager, or call :meth:`aclose` when done::

        async with SendKit(api_key="sk_...") as client:
            await client.dnc.import_entries(["bounce@example.com"])

    A client belongs to the event loop it is first used in (a second loop
    gets :class:`ClientLoopError`); make one per loop, for example in a web
    app's lifespan. One that is garbage-collected while open warns with a
    ``ResourceWarning``.

    Args:
        api_key: a workspace key (``sk_...``) or platform key (``sk_user_...``);
            defaults to ``SENDKIT_API_KEY``.
        base_url: defaults to ``SENDKIT_BASE_URL`` or ``https://api.sendkit.ai``.
        workspace_id: required with a platform key, refused with a workspace
            key; defaults to ``SENDKIT_WORKSPACE_ID``.
        timeout: a :class:`Timeout`, or seconds for each attempt (``None``: the defaults).
        max_retries: retries of transient failures (and, by default, of 429s).
        max_retry_wait: the longest ``Retry-After`` honoured before giving up.
        max_queue_wait: the longest one call waits for its slots in the rate
            budget (its pace, and its pause after a 429), all attempts
            together, before it raises :class:`BudgetTimeoutError`; ``None``
            waits as long as it takes. In a web handler, pass what the
            handler can afford (say 5). Bulk jobs wait as long as it takes
            unless their own ``max_queue_wait`` says otherwise.
        session: an ``aiohttp.ClientSession`` to borrow; closing the client
            leaves it open.
        allow_insecure_http: permit ``http://`` to a non-loopback host.
        headers: extra headers for every request (auth headers cannot be overridden).
        clock: time source for retry waits and pacing; tests pass a fake one.
        connection_limit: the pool's connection cap when the client owns it.
        transport: what sends each attempt (an :class:`AsyncTransport`),
            instead of an aiohttp pool: ``sendkit_async.testing.MockTransport``
            in tests, or a wire of your own. Closing the client closes it.
        rate_budget: the rate budget every call of this client (and of its
            ``with_options`` copies) asks before each attempt and tells each
            answer. Defaults to a :class:`LocalBudget` of its own; pass one
            budget to several clients on the same key to share it.
        max_concurrency: the most requests the ``concurrency="auto"`` helpers
            of this client keep in flight together (default 64: about 40 MB
            of batch bodies at 10,000 typical addresses each).
        max_answer_bytes: the largest answer body the client reads, as sent
            and inflated (default 4 MiB; a page of the largest list is about
            30 KB). Past it the connection is dropped and the attempt fails
            as a dropped connection. For the aiohttp pool only.

    Raises:
        ConfigurationError: missing key, workspace rules broken, a bad URL,
            or a setting of the wrong type.
    """

    __slots__ = ("_last_rate", "_owner", "_session", "dnc", "inbox")

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        workspace_id: str | None = None,
        timeout: Timeout | float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        max_queue_wait: float | None = DEFAULT_MAX_QUEUE_WAIT,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        headers: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        transport: AsyncTransport | None = None,
        rate_budget: RateBudget | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self._owner = False  # until the client is whole: a half-made one holds nothing to close
        configure_from_environment()
        _check_settings(
            max_concurrency=max_concurrency,
            connection_limit=connection_limit,
            max_answer_bytes=max_answer_bytes,
            allow_insecure_http=allow_insecure_http,
            clock=clock,
            session=session,
            rate_budget=rate_budget,
            transport=transport,
        )
        config = ClientConfig.resolve(
            api_key=api_key,
            base_url=base_url,
            workspace_id=workspace_id,
            timeout=as_timeout(timeout, error=ConfigurationError),
            retry=RetryPolicy(
                max_retries=max_retries, max_retry_wait=max_retry_wait, max_queue_wait=max_queue_wait
            ),
            headers=None if headers is None else check_headers(headers, "headers", ConfigurationError),
            allow_insecure_http=allow_insecure_http,
        )
        clock = clock or SystemClock()
        budget = (
            rate_budget if rate_budget is not None else LocalBudget(clock=clock, max_pause=max_retry_wait)
        )
        budget.bind(config.key_id)
        wire = (
            transport
            if transport is not None
            else AiohttpTransport(
                session, connection_limit=connection_limit, max_answer_bytes=max_answer_bytes
            )
        )

        def allowed_rate() -> tuple[float, int] | None:
            snapshot = budget.snapshot()
            return (1.0 / snapshot.interval, snapshot.burst) if snapshot.interval > 0 else None

        scope = ClientScope(wire, clock=clock, allowed_rate=allowed_rate, max_concurrency=max_concurrency)
        self._last_rate = LastRateLimit()
        hooks: tuple[AttemptHook, ...] = (*tracing(), self._last_rate)
        self._bind(Session(config, scope, budget=budget, clock=clock, hooks=hooks), owner=True)

    def _bind(self, session: Session, *, owner: bool) -> None:
        self._session = session
        self._owner = owner
        self.dnc = DncAPI(session)
        self.inbox = InboxAPI(session)

    def __repr__(self) -> str:
        config = self._session.config
        return f"SendKit(base_url={str(config.base_url)!r}, workspace_id={config.workspace_id!r})"

    async def __aenter__(self) -> Self:
        self._session.scope.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the client's streams still running, close its connection pool (unless borrowed); idempotent.

        Copies made by :meth:`with_options` share the pool and leave it to the original.

        Raises:
            ClientLoopError: called from another event loop than the one the client runs in.
        """
        if self._owner:
            await self._session.scope.aclose()

    async def close(self) -> None:
        """The same as :meth:`aclose`."""
        await self.aclose()

    def __del__(self) -> None:
        if getattr(self, "_owner", False) and self._session.scope.opened:
            warnings.warn(
                f"unclosed {self!r}: use 'async with SendKit(...) as client:' or 'await client.aclose()' "
                "so its connections and background tasks are released",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )

    @property
    def closed(self) -> bool:
        """Whether the client (or the one it was copied from) is closed."""
        return self._session.scope.closed

    @property
    def session(self) -> Session:
        """The session wrapper that endpoint coroutines are fed."""
        return self._session

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate-limit headers of the latest answer that carried them."""
        return self._last_rate.latest

    @property
    def rate_budget(self) -> RateBudget:
        """The rate budget this client's calls spend."""
        return self._session.budget

    def budget_snapshot(self) -> BudgetSnapshot:
        """The rate budget's state now: learned limit and interval, pause, waiters, requests in flight.

        ``in_flight_limit`` is the client's adaptive in-flight limit (what
        the ``concurrency="auto"`` helpers allow now), ``None`` before one ran.
        """
        snapshot = self._session.budget.snapshot()
        return attrs.evolve(snapshot, in_flight_limit=self._session.scope.in_flight_limit)

    def with_options(
        self,
        *,
        timeout: Timeout | float | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        max_retry_wait: float | NotGiven = NOT_GIVEN,
        max_queue_wait: float | NotGiven | None = NOT_GIVEN,
        headers: Mapping[str, str] | NotGiven = NOT_GIVEN,
        lane: Lane | NotGiven = NOT_GIVEN,
    ) -> SendKit:
        """A cheap copy with other options, sharing this client's connection pool and rate budget.

        ``timeout=None`` means the default :class:`Timeout`. ``lane=Lane.BULK``
        puts the copy's calls behind interactive ones when the budget is busy
        (bulk helpers use that lane already).

        Example:
            >>> patient = client.with_options(timeout=300, max_retries=5)  # doctest: +SKIP
            >>> background = client.with_options(lane=Lane.BULK)  # doctest: +SKIP

        Raises:
            ValidationError: an option of the wrong type or out of range.
        """
        retry = self._session.config.retry
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("max_retries", max_retries),
                ("max_retry_wait", max_retry_wait),
                ("max_queue_wait", max_queue_wait),
            )
            if not isinstance(value, NotGiven)
        }
        if changes:
            try:
                retry = attrs.evolve(retry, **changes)
            except ConfigurationError as exc:
                raise ValidationError(str(exc)) from None
        copy = object.__new__(SendKit)
        copy._last_rate = self._last_rate
        copy._bind(
            self._session.with_options(timeout=timeout, retry=retry, headers=headers, lane=lane), owner=False
        )
        return copy

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: JSON = None,
        params: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Call an endpoint the SDK does not wrap yet, with the same auth, retries and errors.

        Returns the decoded JSON body as the API sent it (envelope included).

        Raises:
            ValidationError: a method, path or query parameter that is not one (nothing is sent).
            TypeError: a ``json`` body that cannot be serialised (nothing is sent).
        """
        reply = await self._session.request(method, path, json=json, params=params)
        return reply.data


def _check_settings(
    *,
    max_concurrency: object,
    connection_limit: object,
    max_answer_bytes: object,
    allow_insecure_http: object,
    clock: object,
    session: object,
    rate_budget: object,
    transport: object,
) -> None:
    """The constructor's settings that ``ClientConfig`` does not check.

    Raises:
        ConfigurationError: naming the setting.
    """
    try:
        check_whole("connection_limit", connection_limit, minimum=1)
        check_whole("max_answer_bytes", max_answer_bytes, minimum=MIN_ANSWER_BYTES)
        check_whole("max_concurrency", max_concurrency, minimum=1, maximum=MAX_CONCURRENCY)
    except ValidationError as exc:
        raise ConfigurationError(str(exc)) from None
    if not isinstance(allow_insecure_http, bool):
        raise ConfigurationError(
            f"allow_insecure_http must be True or False, got {allow_insecure_http!r:.40}"
        )
    for name, value, needs in (
        ("clock", clock, ("monotonic", "wall", "sleep")),
        ("rate_budget", rate_budget, ("bind", "acquire", "observe", "snapshot")),
    ):
        if value is not None and not all(callable(getattr(value, method, None)) for method in needs):
            raise ConfigurationError(f"{name} must have {', '.join(needs)}(), got {value!r:.60}")
    if transport is not None and session is not None:
        raise ConfigurationError("pass session= (an aiohttp pool to borrow) or transport=, not both")
    if session is not None and not isinstance(session, aiohttp.ClientSession):
        raise ConfigurationError(f"session must be an aiohttp.ClientSession, got {type(session).__name__}")
    if transport is not None and not isinstance(transport, AsyncTransport):
        raise ConfigurationError(f"transport must have async send() and aclose(), got {transport!r:.60}")

"""Coroutine functions for the DNC endpoints, each fed a :class:`~._session.Session`.

* ``POST /v1/dnc/import``: :func:`import_entries`, one call of 1 to 10,000 entries.
* ``GET /v1/dnc``: :func:`get_page` for one page, :func:`iter_pages` and
  :func:`iter_entries` to walk them all in page or cursor mode (each returns
  a stream that is safe to leave at any point; see :mod:`._stream`).

Each signature here is the only one: ``client.dnc`` binds these functions
to its session.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias, overload

import orjson

from ._config import DEFAULT_CONCURRENCY, Timeout
from ._convert import envelope_data, structure, structure_answer, unstructure
from ._errors import ValidationError
from ._flow import Concurrency, check_concurrency
from ._session import Session
from ._stream import Emit, Flattened, Stream
from ._validate import check_whole, is_object_id
from ._walk import DEFAULT_PREFETCH, walk_cursor, walk_pages
from .models import DncEntry, DncPage, DncReason, DncRecord, EntryType, ImportResult, Pagination

__all__ = [
    "MAX_IMPORT_ENTRIES",
    "MAX_PAGE_LIMIT",
    "EntryLike",
    "PageMode",
    "PreparedEntries",
    "Row",
    "get_page",
    "import_entries",
    "iter_entries",
    "iter_pages",
]

MAX_IMPORT_ENTRIES: Final = 10_000
MAX_PAGE_LIMIT: Final = 100

EntryLike: TypeAlias = "DncEntry | str | Mapping[str, Any]"
PageMode: TypeAlias = Literal["cursor", "page"]
Row: TypeAlias = tuple[str, str, str]


class PreparedEntries(Sequence[DncEntry]):
    """Entries already normalised and validated, held as the columns of their wire form.

    ``emails`` holds each entry's ``email`` member; ``kinds`` and ``reasons``
    hold its ``type`` and ``reason``, one per entry, or as a single string
    when every entry shares it (the usual batch: then the body is one join).
    The bulk engine builds one per batch from entries it has checked exactly
    as :meth:`DncEntry.coerce` would; :func:`import_entries` sends it without
    checking again and without a per-entry conversion. It is still a sequence
    of :class:`DncEntry` for anyone who reads it. Build one only from
    validated entries (:meth:`of`); the columns are trusted.
    """

    __slots__ = ("emails", "kinds", "reasons")

    def __init__(
        self,
        emails: list[str] | None = None,
        kinds: list[str] | str = EntryType.EMAIL.value,
        reasons: list[str] | str = DncReason.IMPORT.value,
    ) -> None:
        self.emails = [] if emails is None else emails
        self.kinds = kinds
        self.reasons = reasons

    @classmethod
    def of(cls, entries: Iterable[DncEntry]) -> PreparedEntries:
        """The columns of entries that are already :class:`DncEntry` objects (and so valid)."""
        prepared = cls()
        for entry in entries:
            prepared.append(entry.email, entry.type.value, entry.reason.value)
        return prepared

    def append(self, email: str, kind: str, reason: str) -> None:
        """Add one validated entry in its wire form."""
        count = len(self.emails)
        self.emails.append(email)
        self.kinds = _added(self.kinds, kind, count)
        self.reasons = _added(self.reasons, reason, count)

    def extend(self, emails: list[str], kind: str, reason: str) -> None:
        """Add validated entries that share a type and a reason."""
        count = len(self.emails)
        self.emails.extend(emails)
        self.kinds = _added(self.kinds, kind, count, len(emails))
        self.reasons = _added(self.reasons, reason, count, len(emails))

    def rows(self) -> list[Row]:
        """The entries as ``(email, type, reason)`` tuples."""
        return list(zip(self.emails, _column(self.kinds, self), _column(self.reasons, self), strict=True))

    def __len__(self) -> int:
        return len(self.emails)

    @overload
    def __getitem__(self, index: int) -> DncEntry: ...
    @overload
    def __getitem__(self, index: slice) -> PreparedEntries: ...
    def __getitem__(self, index: int | slice) -> DncEntry | PreparedEntries:
        kind, reason = _pick(self.kinds, index), _pick(self.reasons, index)
        if isinstance(index, slice):
            return PreparedEntries(self.emails[index], kind, reason)
        return DncEntry._trusted(self.emails[index], EntryType(kind), DncReason(reason))  # noqa: SLF001

    def __repr__(self) -> str:
        return f"PreparedEntries({len(self.emails)} entries)"

    def wire(self) -> list[dict[str, str]]:
        """The request's ``entries`` member."""
        return [{"email": email, "type": kind, "reason": reason} for email, kind, reason in self.rows()]

    def body(self) -> bytes:
        """The whole request body, built once, always valid JSON.

        When all entries share a known type and reason and no address holds
        a character JSON would escape (the batcher's addresses never do:
        they matched an ASCII pattern without quotes, backslashes or control
        characters), the JSON is one join; otherwise orjson writes it, so no
        string can leave its quotes whoever built the columns.
        """
        kinds, reasons = self.kinds, self.reasons
        if (
            self.emails
            and isinstance(kinds, str)
            and isinstance(reasons, str)
            and kinds in _KINDS
            and reasons in _REASONS
            and _json_plain("".join(self.emails))
        ):
            rest = f'","type":"{kinds}","reason":"{reasons}"}}'
            # The brackets ride on the first and last address, so the body is
            # two large allocations (the join, its encoding) and never copied.
            emails = self.emails.copy()
            emails[0] = '{"entries":[{"email":"' + emails[0]
            emails[-1] += rest + "]}"
            return (rest + ',{"email":"').join(emails).encode()
        return orjson.dumps({"entries": self.wire()})


_KINDS: Final = frozenset(kind.value for kind in EntryType)
_REASONS: Final = frozenset(reason.value for reason in DncReason)
# What the one-join body can hold unescaped: printable ASCII but quotes and backslashes.
_JSON_PLAIN: Final = bytes(code for code in range(0x20, 0x7F) if chr(code) not in '"\\')


def _json_plain(text: str) -> bool:
    """Whether JSON holds ``text`` as it is (deleting the plain bytes leaves nothing: one C pass)."""
    return text.isascii() and not text.encode().translate(None, _JSON_PLAIN)


def _added(column: list[str] | str, value: str, before: int, count: int = 1) -> list[str] | str:
    """A column after ``count`` entries of ``value`` follow ``before`` others: shared while it can be."""
    if not count:
        return column
    if isinstance(column, str):
        if column == value or not before:
            return value
        column = [column] * before
    column.extend(itertools.repeat(value, count))
    return column


@overload
def _pick(column: list[str] | str, index: int) -> str: ...
@overload
def _pick(column: list[str] | str, index: slice) -> list[str] | str: ...
def _pick(column: list[str] | str, index: int | slice) -> list[str] | str:
    """A column's value(s) at ``index``: a shared value stands for every entry."""
    return column if isinstance(column, str) else column[index]


def _column(column: list[str] | str, entries: PreparedEntries) -> Iterable[str]:
    return itertools.repeat(column, len(entries)) if isinstance(column, str) else column


def _coerce_all(entries: Iterable[EntryLike]) -> list[DncEntry]:
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Iterable):
        raise ValidationError(f"entries must be a list of entries, got {type(entries).__name__}")
    # Read one past the cap so that an oversize input is refused without
    # materialising the rest of it.
    batch = list(itertools.islice(entries, MAX_IMPORT_ENTRIES + 1))
    if len(batch) > MAX_IMPORT_ENTRIES:
        raise ValidationError(
            f"one import call takes at most {MAX_IMPORT_ENTRIES:,} entries; "
            "use client.dnc.import_bulk() to split a larger job into batches",
        )
    if not batch:
        raise ValidationError("an import needs at least one entry")
    coerced: list[DncEntry] = []
    for index, value in enumerate(batch):
        try:
            coerced.append(DncEntry.coerce(value))
        except ValidationError as exc:
            raise ValidationError(f"entries[{index}]: {exc}") from None
    return coerced


async def import_entries(
    session: Session,
    entries: Iterable[EntryLike],
    *,
    timeout: Timeout | float | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> ImportResult:
    """Import 1 to 10,000 entries in one ``POST /v1/dnc/import``.

    Entries may be :class:`DncEntry` objects, plain strings (no ``@`` means a
    domain) or mappings with ``email``/``type``/``reason``. Every entry is
    validated before anything is sent (a :class:`PreparedEntries` was
    validated when it was built, and goes out as it is).

    Example:
        >>> result = await client.dnc.import_entries(["a@example.com", "spam.com"])  # doctest: +SKIP
        >>> result.imported, result.skipped  # doctest: +SKIP
        (2, 0)

    Raises:
        ValidationError: no entries, more than 10,000 (never trimmed), or an
            invalid entry (the message names its index). Nothing is sent.
    """
    session = session.per_call(timeout, extra_headers)
    if isinstance(entries, PreparedEntries):
        if not 1 <= len(entries) <= MAX_IMPORT_ENTRIES:
            raise ValidationError(
                f"an import takes 1 to {MAX_IMPORT_ENTRIES:,} entries, got {len(entries):,}"
            )
        reply = await session.request("POST", "/v1/dnc/import", content=entries.body())
    else:
        wire = unstructure(_coerce_all(entries))
        reply = await session.request("POST", "/v1/dnc/import", json={"entries": wire})
    return structure_answer(reply.data, ImportResult, reply.response)


def _check_list_args(type: EntryType | str | None, limit: int | None, page: int | None) -> str | None:  # noqa: A002
    for name, value in (("limit", limit), ("page", page)):
        if value is not None:
            check_whole(name, value)
    if limit is not None and not 1 <= limit <= MAX_PAGE_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE_LIMIT}, got {limit}")
    if page is not None and page < 1:
        raise ValidationError(f"page must be 1 or more, got {page}")
    if type is None:
        return None
    try:
        return EntryType(type).value
    except ValueError:
        raise ValidationError(f"type must be 'email' or 'domain', got {type!r}") from None


def _check_walk(mode: object, start: object) -> None:
    if mode not in ("cursor", "page"):
        raise ValidationError(f"mode must be 'cursor' or 'page', got {mode!r:.40}")
    if start is None:
        return
    if mode == "page" and (isinstance(start, bool) or not isinstance(start, int) or start < 1):
        raise ValidationError(f"start must be a page number (1 or more) in page mode, got {start!r:.40}")
    if mode == "cursor":
        _check_cursor("start", start)


def _check_cursor(name: str, cursor: object) -> None:
    """A cursor the caller gives is an entry id (24 hex digits).

    The page calls it a "Cursor ID" and every id it shows is one; the cursors
    a server hands back in ``nextCursor`` are followed as given.
    """
    if not is_object_id(cursor):
        raise ValidationError(f"{name} must be a cursor (an entry id, 24 hex digits), got {cursor!r:.40}")


async def get_page(
    session: Session,
    *,
    type: EntryType | str | None = None,  # noqa: A002 - the API's own parameter name
    limit: int | None = None,
    page: int | None = None,
    cursor: str | None = None,
    timeout: Timeout | float | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> DncPage:
    """Fetch one page of ``GET /v1/dnc``.

    Pass ``page`` for page mode or ``cursor`` (an entry id, or a
    ``pagination.next_cursor`` the server gave) for cursor mode, not both;
    with neither the server returns its first page.

    Raises:
        ValidationError: ``limit`` outside 1..100, ``page`` below 1, an
            unknown ``type``, a cursor that is not an entry id, or both
            ``page`` and ``cursor``.
    """
    session = session.per_call(timeout, extra_headers)
    wire_type = _check_list_args(type, limit, page)
    if cursor is not None:
        _check_cursor("cursor", cursor)
    if page is not None and cursor is not None:
        raise ValidationError("pass page or cursor, not both")
    return await _page(session, wire_type, limit, page=page, cursor=cursor)


async def _page(
    session: Session,
    entry_type: str | None,
    limit: int | None,
    *,
    page: int | None = None,
    cursor: str | None = None,
) -> DncPage:
    """One page, its arguments already checked (a walk follows the server's own cursors as given)."""
    reply = await session.request(
        "GET", "/v1/dnc", params={"type": entry_type, "limit": limit, "page": page, "cursor": cursor}
    )
    body = reply.data
    items = structure(envelope_data(body), tuple[DncRecord, ...])
    pagination = structure(body.get("pagination") or {}, Pagination)
    return DncPage(items=items, pagination=pagination, response=reply.response)


def iter_pages(
    session: Session,
    *,
    type: EntryType | str | None = None,  # noqa: A002
    limit: int = MAX_PAGE_LIMIT,
    mode: PageMode = "cursor",
    start: int | str | None = None,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    prefetch: int = DEFAULT_PREFETCH,
    timeout: Timeout | float | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Stream[DncPage]:
    """Every page of ``GET /v1/dnc``, fetched ahead at the key's rate, in the API's order.

    Returns a :class:`~sendkit_async.Stream`: iterate it with ``async for``
    and leave it whenever you like (``break``, an exception, a cancellation,
    a timeout, or dropping it): the walk runs in the client's background and
    stops at once. Nothing is sent until the first page is asked for; the
    arguments are checked at once.

    Cursor mode (the default, and what the API recommends for large lists)
    reads ``page=1`` for the list's size, then runs several cursor walks at
    once, each from the first page of its stretch of the list, and joins
    them where each meets the next (see :mod:`sendkit_async._walk`). Each
    walk continues from ``pagination.nextCursor`` when the server sends one,
    else from the last entry's id, and ends at ``hasMore: false`` or an
    empty page. Its promise:

    * a list that does not change during the walk comes back exactly once per entry;
    * a list that grows or shrinks during the walk loses no entry that was
      there throughout, and yields no entry twice (an entry added or removed
      meanwhile may or may not appear). Segments cost about 3% more requests
      than one chain.

    From a ``start`` cursor, or when the server gives no total, it is one
    chain, a page per round trip.

    Page mode walks ``page=start..pages``, fetched ahead. Offsets shift when
    the list changes, so a changing list may skip or repeat entries there.

    Either way at most ``prefetch`` pages are held ahead of the one being
    read, and requests in flight follow ``concurrency`` (``"auto"``:
    about the rate the budget allows times the latency; a number is a fixed cap).

    Args:
        session: the session to send with.
        type: only ``email`` or only ``domain`` entries.
        limit: entries per page, 1..100.
        mode: ``"cursor"`` or ``"page"``.
        start: the first page number (page mode) or cursor, an entry id (cursor mode).
        concurrency: ``"auto"`` or the most requests in flight.
        prefetch: pages held ahead at most (1 or more).
        timeout: for each page request of this walk only (seconds or a :class:`Timeout`).
        extra_headers: headers for each page request of this walk only.

    Raises:
        ValidationError: a bad argument, when called (nothing is sent).
        UnexpectedResponseError: (while iterating) the server repeated a
            cursor, so the walk would never end.
    """
    session = session.per_call(timeout, extra_headers)
    wire_type = _check_list_args(type, limit, None)
    _check_walk(mode, start)
    check_concurrency(concurrency)
    check_whole("prefetch", prefetch, minimum=1)
    limiter = session.scope.in_flight(concurrency)
    fetch = functools.partial(_page, session.with_hooks(limiter), wire_type, limit)

    async def walk(emit: Emit[DncPage]) -> None:
        if mode == "page":
            first = start if isinstance(start, int) else 1
            await walk_pages(fetch, emit, limiter=limiter, prefetch=prefetch, start=first)
        else:
            cursor = None if start is None else str(start)
            await walk_cursor(fetch, emit, limiter=limiter, prefetch=prefetch, start=cursor)

    return Stream(session.scope, walk)


def iter_entries(
    session: Session,
    *,
    type: EntryType | str | None = None,  # noqa: A002
    limit: int = MAX_PAGE_LIMIT,
    mode: PageMode = "cursor",
    start: int | str | None = None,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    prefetch: int = DEFAULT_PREFETCH,
    timeout: Timeout | float | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Flattened[DncPage, DncRecord]:
    """Every DNC entry across pages, as a stream safe to leave; see :func:`iter_pages` for the walk.

    Example:
        >>> async for entry in client.dnc.list(type="email"):  # doctest: +SKIP
        ...     print(entry.email, entry.created_at)
        ...     if entry.email == "stop@example.com":
        ...         break  # safe: the walk in the background stops

    Raises:
        ValidationError: a bad argument, when called (nothing is sent).
        UnexpectedResponseError: (while iterating) the server repeated a cursor.
    """
    pages = iter_pages(
        session,
        type=type,
        limit=limit,
        mode=mode,
        start=start,
        concurrency=concurrency,
        prefetch=prefetch,
        timeout=timeout,
        extra_headers=extra_headers,
    )
    return Flattened(pages, _items)


def _items(page: DncPage) -> tuple[DncRecord, ...]:
    return page.items

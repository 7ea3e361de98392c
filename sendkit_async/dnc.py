"""Coroutine functions for the DNC endpoints, each fed a :class:`~._session.Session`.

* ``POST /v1/dnc/import``: :func:`import_entries`, one call of 1 to 10,000 entries.
* ``GET /v1/dnc``: :func:`get_page` for one page, :func:`iter_pages` and
  :func:`iter_entries` to walk them all in page or cursor mode.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Final, Literal, TypeAlias, overload

import orjson

from ._convert import envelope_data, structure, unstructure
from ._errors import UnexpectedResponseError, ValidationError
from ._session import Session
from ._validate import check_whole
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
_EMAIL, _KIND, _REASON = itemgetter(0), itemgetter(1), itemgetter(2)


class PreparedEntries(Sequence[DncEntry]):
    """Entries already normalised and validated, held in their wire form ``(email, type, reason)``.

    The bulk engine builds one per batch from entries it has checked exactly
    as :meth:`DncEntry.coerce` would; :func:`import_entries` sends it without
    checking again and without a per-entry conversion. It is still a sequence
    of :class:`DncEntry` for anyone who reads it. Build one only from
    validated entries (:meth:`of`); the rows are trusted.
    """

    __slots__ = ("rows",)

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows

    @classmethod
    def of(cls, entries: Iterable[DncEntry]) -> PreparedEntries:
        """Rows of entries that are already :class:`DncEntry` objects (and so valid)."""
        return cls([(e.email, e.type.value, e.reason.value) for e in entries])

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> DncEntry: ...
    @overload
    def __getitem__(self, index: slice) -> PreparedEntries: ...
    def __getitem__(self, index: int | slice) -> DncEntry | PreparedEntries:
        if isinstance(index, slice):
            return PreparedEntries(self.rows[index])
        email, kind, reason = self.rows[index]
        return DncEntry._trusted(email, EntryType(kind), DncReason(reason))  # noqa: SLF001 - validated rows

    def __repr__(self) -> str:
        return f"PreparedEntries({len(self.rows)} entries)"

    def wire(self) -> list[dict[str, str]]:
        """The request's ``entries`` member."""
        return [{"email": email, "type": kind, "reason": reason} for email, kind, reason in self.rows]

    def body(self) -> bytes:
        """The whole request body, built once.

        Every address here matched an ASCII pattern without quotes,
        backslashes or control characters, so when all rows share a type and
        a reason (the usual batch) the JSON is one join; otherwise orjson
        writes it.
        """
        rows = self.rows
        kinds, reasons = set(map(_KIND, rows)), set(map(_REASON, rows))
        if len(kinds) == 1 and len(reasons) == 1:
            rest = f'","type":"{kinds.pop()}","reason":"{reasons.pop()}"}}'
            between = rest + ',{"email":"'
            return ('{"entries":[{"email":"' + between.join(map(_EMAIL, rows)) + rest + "]}").encode()
        return orjson.dumps({"entries": self.wire()})


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


async def import_entries(session: Session, entries: Iterable[EntryLike]) -> ImportResult:
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
    if isinstance(entries, PreparedEntries):
        if not 1 <= len(entries) <= MAX_IMPORT_ENTRIES:
            raise ValidationError(
                f"an import takes 1 to {MAX_IMPORT_ENTRIES:,} entries, got {len(entries):,}"
            )
        body = await session.request("POST", "/v1/dnc/import", content=entries.body())
    else:
        wire = unstructure(_coerce_all(entries))
        body = await session.request("POST", "/v1/dnc/import", json={"entries": wire})
    return structure(envelope_data(body), ImportResult)


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
        raise ValidationError(f"mode must be 'cursor' or 'page', got {mode!r}")
    if (start is not None and not isinstance(start, (int, str))) or isinstance(start, bool):
        raise ValidationError(f"start must be a page number or a cursor id, got {start!r}")


async def get_page(
    session: Session,
    *,
    type: EntryType | str | None = None,  # noqa: A002 - the API's own parameter name
    limit: int | None = None,
    page: int | None = None,
    cursor: str | None = None,
) -> DncPage:
    """Fetch one page of ``GET /v1/dnc``.

    Pass ``page`` for page mode or ``cursor`` (an entry id) for cursor mode,
    not both; with neither the server returns its first page.

    Raises:
        ValidationError: ``limit`` outside 1..100, ``page`` below 1, an
            unknown ``type``, or both ``page`` and ``cursor``.
    """
    wire_type = _check_list_args(type, limit, page)
    if cursor is not None and not isinstance(cursor, str):
        raise ValidationError(f"cursor must be an entry id string, got {cursor!r}")
    if page is not None and cursor is not None:
        raise ValidationError("pass page or cursor, not both")
    body = await session.request(
        "GET",
        "/v1/dnc",
        params={"type": wire_type, "limit": limit, "page": page, "cursor": cursor},
    )
    items = structure(envelope_data(body), tuple[DncRecord, ...])
    pagination = structure(body.get("pagination") or {}, Pagination)
    return DncPage(items=items, pagination=pagination)


async def iter_pages(
    session: Session,
    *,
    type: EntryType | str | None = None,  # noqa: A002
    limit: int = MAX_PAGE_LIMIT,
    mode: PageMode = "cursor",
    start: int | str | None = None,
) -> AsyncGenerator[DncPage, None]:
    """Yield every page of ``GET /v1/dnc`` until the pagination says there is no more.

    Cursor mode (the default, and what the API recommends for large lists)
    continues from ``pagination.nextCursor`` when the server sends one, else
    from the last entry's id; it stops when ``hasMore`` is false, or, when the
    server sends neither, at the first empty page. Page mode walks
    ``page=1..pages``. Short and empty pages do not end the walk early.

    Args:
        session: the session to send with.
        type: only ``email`` or only ``domain`` entries.
        limit: entries per page, 1..100.
        mode: ``"cursor"`` or ``"page"``.
        start: the first page number (page mode) or cursor (cursor mode).

    Raises:
        UnexpectedResponseError: the server repeated a cursor (the walk would never end).
    """
    _check_list_args(type, limit, None)
    _check_walk(mode, start)
    if mode == "page":
        number = int(start) if start is not None else 1
        while True:
            result = await get_page(session, type=type, limit=limit, page=number)
            yield result
            pages = result.pagination.pages
            if pages is not None:
                if number >= pages:
                    return
            elif result.pagination.has_more is False or not result.items:
                return
            number += 1
    cursor = None if start is None else str(start)
    while True:
        result = await get_page(session, type=type, limit=limit, cursor=cursor)
        yield result
        pagination = result.pagination
        if pagination.has_more is False:
            return
        following = pagination.next_cursor or (result.items[-1].id if result.items else None)
        if following is None:
            return
        if following == cursor:
            raise UnexpectedResponseError(
                f"the API returned cursor {cursor!r} again; stopping to avoid an endless walk",
                status=200,
                body="",
            )
        cursor = following


async def iter_entries(
    session: Session,
    *,
    type: EntryType | str | None = None,  # noqa: A002
    limit: int = MAX_PAGE_LIMIT,
    mode: PageMode = "cursor",
    start: int | str | None = None,
) -> AsyncGenerator[DncRecord, None]:
    """Yield every DNC entry across pages; see :func:`iter_pages` for the walk.

    Example:
        >>> async for entry in client.dnc.list(type="email"):  # doctest: +SKIP
        ...     print(entry.email, entry.created_at)
    """
    async for page in iter_pages(session, type=type, limit=limit, mode=mode, start=start):
        for item in page.items:
            yield item

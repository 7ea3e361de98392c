"""Walking a long list at the key's rate: pages fetched ahead, yielded in the API's order.

A cursor walk is a chain (each page names the next), so one walk runs at one
page per round trip however fast the key may go. :func:`walk_cursor` runs
many chains at once. The first page (``page=1``) tells the list's size; the
list is cut into *segments* of 32 pages; each segment's first
page (its *head*) is fetched in page mode, and from the head's last entry a
cursor walk carries on until it meets an entry of a later segment. The pages
come out in order: a segment, then the segment its walk met, from the entry
it met.

Why nothing is lost or doubled, even while the list changes: every page a
cursor walk returns is a contiguous run of the list *after* its cursor, at
the moment it was served, and a head is a contiguous run at its moment.
A walk stops at the first entry it sees that a later segment holds (checked
on the next entry too when both are known, so that a server whose page and
cursor orders differ is not trusted). What the walk yielded is strictly
before that entry and what the later segment yields from it is strictly
after, so no entry comes twice; and an entry present for the whole walk lies
between two that were seen, so some walk or head returned it. An entry
inserted or deleted during the walk may or may not appear, once at most.
Heads that do not fit (empty, or the first page again because the server
ignores ``page``, or refused) are dropped, and the walk before them simply
carries on.

:func:`walk_pages` is plain page mode fetched ahead: offsets shift when the
list changes, so it makes no such promise.

Both are coroutines that hand each page to ``emit`` in order (a stream's
channel, see :mod:`._stream`), not async generators: their concurrency
(:func:`~._fanout.fan_out`) opens and closes inside them, in one task.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Final, Protocol

import anyio
import attrs

from ._errors import APIStatusError, UnexpectedResponseError
from ._fanout import beside, fan_out
from ._flow import FixedLimit, InFlight
from .models import DncPage, DncRecord

__all__ = ["DEFAULT_PREFETCH", "continuation", "walk_cursor", "walk_pages"]

# Pages held ahead of the one being yielded (100 entries each at most):
# 256 pages hold about 25,600 entries.
DEFAULT_PREFETCH: Final = 256
# A segment's walk ends by fetching one page the next segment's head already
# holds, so segments of 32 pages cost 1/32 (3%) more requests than one chain.
SEGMENT_PAGES: Final = 32
_END: Final = -1


class PageFetch(Protocol):
    """``get_page`` with its filters bound: one page by number, or after a cursor."""

    def __call__(self, *, page: int | None = None, cursor: str | None = None) -> Awaitable[DncPage]: ...


EmitPage = Callable[[DncPage], Awaitable[None]]


def continuation(page: DncPage, cursor: str | None) -> str | None:
    """The cursor after ``page`` (fetched after ``cursor``), or ``None`` at the end of the list.

    The server's ``nextCursor`` when it sends one, else the last entry's id;
    ``hasMore: false`` or an empty page ends the walk.

    Raises:
        UnexpectedResponseError: the server handed back the same cursor (the walk would never end).
    """
    if page.pagination.has_more is False:
        return None
    following = page.pagination.next_cursor or (page.items[-1].id if page.items else None)
    if following is not None and following == cursor:
        raise UnexpectedResponseError(
            f"the API returned cursor {cursor!r} again; stopping to avoid an endless walk",
            status=200,
            body="",
        )
    return following


@attrs.define(eq=False)
class _Segment:
    number: int
    pages: list[DncPage | None] = attrs.Factory(list)
    index: dict[str, tuple[int, int]] = attrs.Factory(dict)
    ready: bool = False  # its head is in (or it has none to wait for)
    dropped: bool = False
    done: bool = False
    held: int = 0  # pages fetched and not yet yielded
    walking: bool = False
    walked: int = 0  # pages its walk fetched
    cursor: str | None = None  # where its walk goes on from
    # Where the output goes on after this segment: (segment, page, item), or _END.
    following: tuple[int, int, int] = (_END, 0, 0)
    scope: anyio.CancelScope | None = None

    def add(self, page: DncPage) -> None:
        at = len(self.pages)
        self.pages.append(page)
        self.held += 1
        for position, item in enumerate(page.items):
            self.index.setdefault(item.id, (at, position))

    def after(self, spot: tuple[int, int]) -> DncRecord | None:
        """The entry after ``spot`` in this segment, if fetched."""
        page_at, item_at = spot
        for page in self.pages[page_at:]:
            if page is not None and item_at + 1 < len(page.items):
                return page.items[item_at + 1]
            item_at = -1
        return None


class _CursorWalk:
    """The state of one concurrent cursor walk; see the module docstring."""

    def __init__(
        self,
        fetch: PageFetch,
        limiter: InFlight,
        prefetch: int,
        first: DncPage,
        segment_pages: int,
        segments: int,
    ) -> None:
        self._fetch = fetch
        self._limiter = limiter
        self._prefetch = prefetch
        self._segment_pages = segment_pages
        self._count = segments
        # Segments walking at once: enough chains for twice the in-flight
        # limit when the walk began, as many as the prefetch window holds
        # whole (more would fill it with parts of segments and leave one chain
        # running); their requests still wait on the limiter.
        self._window = max(2, min(2 * limiter.limit, prefetch // segment_pages))
        self._segments: dict[int, _Segment] = {}
        head = _Segment(0, ready=True, cursor=continuation(first, None))
        head.add(first)
        self._segments[0] = head
        self._first_id = first.items[0].id if first.items else None
        self.out = 0
        self._changed = anyio.Event()

    @property
    def buffered(self) -> int:
        """Pages fetched and not yet yielded."""
        return sum(s.held for s in self._segments.values())

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait(self) -> None:
        await self._changed.wait()

    async def schedule(self) -> None:
        """Run the segments, each as the window reaches it: heads one segment ahead of the walks."""
        # Segment 0, and up to `window` after it, run at once; the numbers wait for the window.
        await fan_out(self._numbers(), self._run_number, limiter=FixedLimit(self._window + 1))

    async def _numbers(self) -> AsyncIterator[int]:
        for number in range(self._count):
            while number > self.out + self._window:
                await self._wait()
            if self.out == _END or number >= self._count:
                return
            yield number

    async def _run_number(self, number: int) -> None:
        segment = self._segments.get(number)
        if segment is None:
            segment = self._segments[number] = _Segment(number)
        await self._run(segment)

    async def _run(self, segment: _Segment) -> None:
        with anyio.CancelScope() as scope:
            segment.scope = scope
            try:
                if segment.number and not await self._head(segment):
                    return
                while segment.number >= self.out + self._window:
                    await self._wait()
                await self._walk(segment)
            finally:
                self._notify()

    async def _head(self, segment: _Segment) -> bool:
        page_number = 1 + segment.number * self._segment_pages
        try:
            async with self._limiter.slot():
                page = await self._fetch(page=page_number)
        except APIStatusError as exc:
            if exc.status >= 500:  # noqa: PLR2004 - a server failure is the walk's, not the head's
                raise
            page = None
        usable = page is not None and bool(page.items) and page.items[0].id != self._first_id
        if page is None or not usable:
            segment.dropped = True  # the walk before it carries on past
            segment.ready = True
            self._notify()
            return False
        segment.add(page)
        segment.cursor = continuation(page, None)
        segment.ready = True
        self._notify()
        return True

    async def _walk(self, segment: _Segment) -> None:
        cursor = segment.cursor
        segment.walking = True
        while cursor is not None:
            # A full window waits, except the walk being yielded once the reader has all of it;
            # the others keep in step, so that none is left to finish alone, a page per round trip.
            while not self._may_fetch(segment):
                await self._wait()
            segment.walked += 1
            async with self._limiter.slot():
                page = await self._fetch(cursor=cursor)
            if not page.items:  # nothing to keep; the pagination says whether the list goes on
                cursor = continuation(page, cursor)
                continue
            # Only a later segment whose head is in can be met: wait for the next one's.
            while not self._next_ready(segment.number):
                await self._wait()
            met = self._meet(segment, page)
            if met is not None:
                position, target = met
                if position:
                    self._keep(segment, attrs.evolve(page, items=page.items[:position]))
                self._finish(segment, target)
                return
            self._keep(segment, page)
            cursor = continuation(page, cursor)
        self._finish(segment, (_END, 0, 0))

    def _may_fetch(self, segment: _Segment) -> bool:
        if segment.number == self.out:
            return self.buffered < self._prefetch or not segment.held
        if self.buffered >= self._prefetch:
            return False
        # When every segment walks at once, they keep in step, so that none is
        # left to finish alone; a rolling window needs no such thing.
        return self._count > self._window or segment.walked <= self._slowest() + 1

    def _slowest(self) -> int:
        walks = [s.walked for s in self._segments.values() if s.walking and not s.done and not s.dropped]
        return min(walks, default=0)

    def _next_ready(self, number: int) -> bool:
        following = number + 1
        if following >= self._count:
            return True
        segment = self._segments.get(following)
        return segment is not None and segment.ready

    def _keep(self, segment: _Segment, page: DncPage) -> None:
        segment.add(page)
        self._notify()

    def _meet(self, segment: _Segment, page: DncPage) -> tuple[int, tuple[int, int, int]] | None:
        """The first entry of ``page`` that a later segment holds: its position and where it is there."""
        later = [
            s
            for n, s in sorted(self._segments.items())
            if n > segment.number and s.ready and not s.dropped and s.pages
        ]
        if not later:
            return None
        items = page.items
        for position, item in enumerate(items):
            for other in later:
                spot = other.index.get(item.id)
                if spot is None:
                    continue
                theirs = other.after(spot)
                ours = items[position + 1] if position + 1 < len(items) else None
                if theirs is not None and ours is not None and theirs.id != ours.id:
                    continue  # one entry in common, not a run: not where they join
                return position, (other.number, *spot)
        return None

    def _finish(self, segment: _Segment, target: tuple[int, int, int]) -> None:
        segment.following = target
        segment.done = True
        reached = target[0] if target[0] != _END else math.inf
        for number, other in list(self._segments.items()):
            if segment.number < number < reached:
                other.dropped = True
                if other.scope is not None:
                    other.scope.cancel()
        if target[0] == _END:
            self._count = min(self._count, max(self._segments) + 1)
        self._notify()

    async def emit_pages(self, emit: EmitPage) -> None:
        """Emit the walk's pages in order, freeing each as it goes."""
        segment = self._segments[0]
        page_at, item_at = 0, 0
        while True:
            if page_at < len(segment.pages):
                page = segment.pages[page_at]
                segment.pages[page_at] = None
                if page is not None:
                    segment.held -= 1
                self._notify()
                if page is not None:
                    await emit(page if not item_at else attrs.evolve(page, items=page.items[item_at:]))
                page_at, item_at = page_at + 1, 0
                continue
            if not segment.done:
                await self._wait()
                continue
            number, page_at, item_at = segment.following
            self._segments.pop(segment.number, None)
            if number == _END:
                self.out = _END
                self._notify()
                return
            segment = self._segments[number]
            for dropped in [n for n in self._segments if n < number]:
                self._segments.pop(dropped)
            self.out = number
            for skipped in range(page_at):  # pages before the entry the walk met: yielded already
                if segment.pages[skipped] is not None:
                    segment.pages[skipped] = None
                    segment.held -= 1
            self._notify()


async def walk_cursor(
    fetch: PageFetch,
    emit: EmitPage,
    *,
    limiter: InFlight,
    prefetch: int = DEFAULT_PREFETCH,
    start: str | None = None,
) -> None:
    """Emit every page of the list in cursor mode, many chains at once; see the module docstring.

    From a given ``start`` cursor, or when the first page gives no total or
    the limit is one in flight, it is one chain, page after page.
    """
    if start is not None:
        first = await _one(fetch, limiter, cursor=start)
    else:
        first = await _one(fetch, limiter, page=1)
    total, size = first.pagination.total, first.pagination.limit or len(first.items)
    pages = math.ceil(total / size) if total is not None and size else 0
    if start is None and total is not None and total <= len(first.items):
        await emit(first)  # the whole list
        return
    if start is not None or pages <= 1 or limiter.limit <= 1:
        await emit(first)
        cursor = continuation(first, start)
        while cursor is not None:
            page = await _one(fetch, limiter, cursor=cursor)
            if page.items:
                await emit(page)
            cursor = continuation(page, cursor)
        return
    walk = _CursorWalk(fetch, limiter, prefetch, first, SEGMENT_PAGES, math.ceil(pages / SEGMENT_PAGES))
    await beside(functools.partial(walk.emit_pages, emit), walk.schedule)


async def walk_pages(
    fetch: PageFetch, emit: EmitPage, *, limiter: InFlight, prefetch: int = DEFAULT_PREFETCH, start: int = 1
) -> None:
    """Emit every page from ``start`` in page mode, fetched ahead within ``prefetch`` pages, in order.

    It stops after the last page the answers count (``pagination.pages``,
    or ``total``/``limit``); without a count it goes page by page until a
    short or empty page, or ``hasMore: false``.
    """
    first = await _one(fetch, limiter, page=start)
    await emit(first)
    last = _last_page(first)
    if last is None:
        number, page = start, first
        while (
            page.items
            and page.pagination.has_more is not False
            and len(page.items) >= (page.pagination.limit or 1)
        ):
            number += 1
            page = await _one(fetch, limiter, page=number)
            await emit(page)
        return
    known = [last]  # a later page may count more pages than the first did

    def numbers() -> Iterator[int]:
        for number in itertools.count(start + 1):
            if number > known[0]:
                return
            yield number

    async def fetch_one(number: int) -> DncPage:
        page = await fetch(page=number)
        known[0] = max(known[0], _last_page(page) or 0)
        return page

    await fan_out(numbers(), fetch_one, limiter=limiter, deliver=emit, ordered=True, window=prefetch)


def _last_page(page: DncPage) -> int | None:
    pagination = page.pagination
    if pagination.pages is not None:
        return pagination.pages
    if pagination.total is not None and pagination.limit:
        return math.ceil(pagination.total / pagination.limit)
    return None


async def _one(
    fetch: Callable[..., Awaitable[DncPage]], limiter: InFlight, **where: int | str | None
) -> DncPage:
    async with limiter.slot():
        return await fetch(**where)

"""Turns any input into validated, deduplicated, size-bounded batches, lazily."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import sys
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from operator import contains, rshift, setitem
from typing import Any, Final

import anyio.lowlevel
import attrs

from sendkit_async._errors import ValidationError
from sendkit_async._validate import all_normal_emails
from sendkit_async.dnc import PreparedEntries
from sendkit_async.models import DncEntry, DncReason, EntryType

from ._report import FailedEntry, RejectedEntry

__all__ = [
    "Batch",
    "Batcher",
    "DryRunReport",
    "EntrySource",
    "UnreadableItem",
    "check_source",
    "dry_run",
    "landed_domains",
]


class UnreadableItem(ValueError):  # noqa: N818 - an input item, reported, never raised to the caller
    """A reader's word that one input item did not parse: rejected with this message, shown as ``text``."""

    def __init__(self, message: str, *, text: str) -> None:
        super().__init__(message)
        self.text = text


EntrySource = Iterable[Any] | AsyncIterable[Any]
_CHUNK: Final = 1024
_SHOWN: Final = 200
# {"email":"","type":"","reason":""}, around each entry on the wire
_ENTRY_OVERHEAD: Final = 34
_BODY_OVERHEAD: Final = 16


@attrs.define
class Batch:
    """Up to ``batch_size`` valid entries and the input span ``[start, end)`` they came from."""

    index: int
    start: int
    end: int = 0
    positions: list[int] = attrs.Factory(list)
    # In wire form, as columns of strings: no object per entry, nothing for
    # the garbage collector to walk while batches are in flight.
    entries: PreparedEntries = attrs.Factory(PreparedEntries)
    rejected: list[RejectedEntry] = attrs.Factory(list)
    duplicates: int = 0
    size: int = _BODY_OVERHEAD

    def domains(self) -> int:
        """Entries of type ``domain`` (each blocks a whole domain)."""
        kinds = self.entries.kinds
        if isinstance(kinds, str):
            return len(self.entries) if kinds == EntryType.DOMAIN.value else 0
        return kinds.count(EntryType.DOMAIN.value)

    def digest(self) -> str:
        """A fingerprint of the entries, to check a checkpoint against the same input."""
        content = "\n".join(self.entries.emails).encode()
        return hashlib.blake2b(content, digest_size=16).hexdigest()


def landed_domains(batch: Batch, failed: Iterable[FailedEntry]) -> int:
    """The batch's domain entries less those that failed (a domain never holds an ``@``)."""
    return batch.domains() - sum("@" not in entry.email for entry in failed)


def _show(item: object) -> str:
    if isinstance(item, Mapping) and isinstance(item.get("email", item.get("domain")), str):
        item = item.get("email", item.get("domain"))
    elif isinstance(item, UnreadableItem):
        item = item.text
    text = item if isinstance(item, str) else repr(item)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def check_source(source: object) -> None:
    """Refuse, before anything starts, an input that is not a stream of items.

    Raises:
        ValidationError: ``None``, a single string or mapping, or anything not iterable.
    """
    if isinstance(source, (str, bytes, Mapping)) or not isinstance(source, (Iterable, AsyncIterable)):
        raise ValidationError(
            f"entries must be an iterable or async iterable of entries, got {type(source).__name__}"
        )


async def _chunks(source: EntrySource) -> AsyncGenerator[list[Any], None]:
    """The input in lists of up to 1,024 items, yielding to the loop between them."""
    if isinstance(source, AsyncIterable):
        chunk: list[Any] = []
        async for item in source:
            chunk.append(item)
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        return
    iterator = iter(source)
    while chunk := list(itertools.islice(iterator, _CHUNK)):
        yield chunk
        await anyio.lowlevel.checkpoint()


class SeenAddresses:
    """Every distinct address of a job, exactly: no digest, so no collision can drop a valid entry.

    They are dict keys: CPython stops tracking a dict whose keys and values
    are all strings and ``None``, so the garbage collector's full passes skip
    it instead of walking millions of addresses while the import runs. Up to
    32,768 addresses they are the keys of one dict. Beyond that, of 256 dicts
    picked by the top byte of each address' hash, so that no dict grows past
    a 256th of the job: a dict of millions of addresses holds the event loop
    each time it doubles (75 to 105 ms at 2,000,000 on the 2-core machine
    this project is measured on), and 256 of them for about 15 ms at most.
    The price is about half a microsecond more per address, as the lookups
    then go through a few ``map`` calls instead of one set operation.

    Memory is about 100 bytes per distinct address either way (the string
    and its slot; measured in ``benchmarks/bench_client_cost.py``). No
    Python object is under 32 bytes, so a smaller exact set would need
    compiled code; pass ``dedupe=False`` for constant memory when the input
    is known to be clean.
    """

    __slots__ = ("_one", "_shards")
    _SPLIT: Final = 1 << 15
    # The top byte of a hash picks the shard (as a signed number, -128..127,
    # which a list of 256 indexes just as well).
    _SHIFT: Final = sys.hash_info.width - 8

    def __init__(self) -> None:
        self._one: dict[str, None] = {}
        self._shards: list[dict[str, None]] | None = None

    def __len__(self) -> int:
        return len(self._one) if self._shards is None else sum(map(len, self._shards))

    def add(self, email: str) -> bool:
        """Remember an address; ``False`` if it was already there."""
        seen = self._one if self._shards is None else self._shards[hash(email) >> self._SHIFT]
        if email in seen:
            return False
        seen[email] = None
        if len(self._one) >= self._SPLIT:
            self._split()
        return True

    def add_if_all_new(self, emails: dict[str, None]) -> bool:
        """Remember distinct addresses if none is here yet; if one is, remember none and say ``False``."""
        if self._shards is None:
            if not self._one.keys().isdisjoint(emails):
                return False
            self._one.update(emails)
            if len(self._one) >= self._SPLIT:
                self._split()
            return True
        picks = map(rshift, map(hash, emails), itertools.repeat(self._SHIFT))
        shards = list(map(self._shards.__getitem__, picks))
        if any(map(contains, shards, emails)):
            return False
        # shard[email] = None for each, run in C.
        deque(map(setitem, shards, emails, itertools.repeat(None)), maxlen=0)
        return True

    async def forget(self) -> None:
        """Let go of every address, a shard at a time: freeing millions at once would hold the loop."""
        for shard in self._shards or ():
            shard.clear()
            await anyio.lowlevel.checkpoint()
        self._one.clear()
        self._shards = None

    def _split(self) -> None:
        shards: list[dict[str, None]] = [{} for _ in range(256)]
        for email in self._one:
            shards[hash(email) >> self._SHIFT][email] = None
        self._shards, self._one = shards, {}


@attrs.define
class Batcher:
    """Validates and groups entries.

    Each input item is coerced with :meth:`DncEntry.coerce` (strings, mappings
    or entries; ``reason`` and ``type`` are the defaults for items without their own). Invalid items
    become :class:`RejectedEntry` records with their position; with ``dedupe``,
    an address seen before in the job counts as a duplicate. A batch closes at
    ``batch_size`` entries or when the next entry would take its JSON body
    past ``max_bytes``.

    Deduplication keeps every distinct address of the job, exactly: see
    :class:`SeenAddresses`.
    """

    batch_size: int
    max_bytes: int
    dedupe: bool
    reason: DncReason | None = None
    type: EntryType | None = None  # None: inferred per item (``"auto"``)
    seen: SeenAddresses = attrs.Factory(SeenAddresses)

    async def batches(self, source: EntrySource) -> AsyncGenerator[Batch, None]:
        """Yield batches in input order; memory holds one open batch at a time."""
        cursor = _Cursor(Batch(index=0, start=0))
        async with contextlib.aclosing(_chunks(source)) as chunks:
            async for chunk in chunks:
                normal = _normalised(chunk) if self.type is not EntryType.DOMAIN else None
                closed = self._slices(cursor, normal) if normal is not None else None
                for batch in closed if closed is not None else self._items(cursor, chunk, normal):
                    yield batch
        cursor.batch.end = cursor.position
        if cursor.batch.end > cursor.batch.start:
            yield cursor.batch
        await self.seen.forget()  # the input is all read: no more repeats to catch

    def _close(self, cursor: _Cursor, closed: list[Batch]) -> None:
        cursor.batch.end = cursor.position
        closed.append(cursor.batch)
        cursor.batch = Batch(index=cursor.batch.index + 1, start=cursor.position)

    def _slices(self, cursor: _Cursor, normal: list[str]) -> list[Batch] | None:
        """A clean chunk in whole slices, or ``None`` when something in it could change a decision.

        That is a repeat (within the chunk, or of an address seen before) or a
        chance of passing the byte bound even in the current batch; then the
        chunk goes item by item, with the same outcome, only slower.
        """
        count = len(normal)
        if cursor.batch.size + sum(map(len, normal)) + _ENTRY_OVERHEAD * count > self.max_bytes:
            return None
        if self.dedupe:
            fresh = dict.fromkeys(normal)
            if len(fresh) != count or not self.seen.add_if_all_new(fresh):
                return None
        reason = (self.reason or DncReason.IMPORT).value
        closed: list[Batch] = []
        done = 0
        while done < count:
            if len(cursor.batch.entries) >= self.batch_size:
                self._close(cursor, closed)
            take = normal[done : done + self.batch_size - len(cursor.batch.entries)]
            batch = cursor.batch
            batch.entries.extend(take, "email", reason)
            batch.positions.extend(range(cursor.position, cursor.position + len(take)))
            batch.size += sum(map(len, take)) + _ENTRY_OVERHEAD * len(take)
            cursor.position += len(take)
            done += len(take)
        return closed

    def _items(self, cursor: _Cursor, chunk: list[Any], normal: list[str] | None) -> list[Batch]:
        """A chunk item by item: coerce, reject, dedupe, and close batches at the bounds."""
        # This loop may run once per input item: names are bound locally and
        # the size is a cheap upper bound, to keep it lean.
        coerce, reason, kind_given, seen, dedupe = (
            DncEntry.coerce,
            self.reason,
            self.type,
            self.seen,
            self.dedupe,
        )
        default_reason = (reason or DncReason.IMPORT).value
        closed: list[Batch] = []
        for index, item in enumerate(chunk):
            try:
                if normal is not None:
                    email, kind, why = normal[index], "email", default_reason
                elif isinstance(item, Exception):  # a reader's word that this item did not parse
                    raise ValidationError(str(item))  # noqa: TRY301 - one rejection path
                else:
                    entry = coerce(item, reason=reason, type=kind_given)
                    email, kind, why = entry.email, entry.type.value, entry.reason.value
            except ValidationError as exc:
                cursor.batch.rejected.append(RejectedEntry(cursor.position, _show(item), str(exc)))
                cursor.position += 1
                continue
            if dedupe and not seen.add(email):
                cursor.batch.duplicates += 1
                cursor.position += 1
                continue
            size = len(email) + _ENTRY_OVERHEAD
            batch = cursor.batch
            if len(batch.entries) >= self.batch_size or (
                batch.entries and batch.size + size > self.max_bytes
            ):
                self._close(cursor, closed)
                batch = cursor.batch
            batch.positions.append(cursor.position)
            batch.entries.append(email, kind, why)
            batch.size += size
            cursor.position += 1
        return closed


@attrs.define
class _Cursor:
    """The open batch and the input position of the next item."""

    batch: Batch
    position: int = 0


def _normalised(chunk: list[Any]) -> list[str] | None:
    """A chunk of plain addresses, stripped and lowercased as ``normalize_email`` would, if all are clean.

    Then each is exactly what :meth:`DncEntry.coerce` makes of it; ``None``
    means the chunk goes item by item.
    """
    try:
        lowered = [item.strip().lower() for item in chunk]
        return lowered if all_normal_emails(lowered) else None
    except (AttributeError, TypeError):  # not all strings (bytes fail the join)
        return None


@attrs.frozen
class DryRunReport:
    """What an import would do, found without sending anything."""

    read: int
    rejected: tuple[RejectedEntry, ...]
    duplicates: int
    valid: int
    batches: int
    domains: int = 0
    """How many of the valid entries are whole domains."""

    @property
    def balanced(self) -> bool:
        """Whether ``read == rejected + duplicates + valid``."""
        return self.read == len(self.rejected) + self.duplicates + self.valid


async def dry_run(source: EntrySource, batcher: Batcher) -> DryRunReport:
    """Validate, dedupe and batch the input exactly as an import would, sending nothing."""
    check_source(source)
    read = duplicates = valid = batches = domains = 0
    rejected: list[RejectedEntry] = []
    async with contextlib.aclosing(batcher.batches(source)) as made:
        async for batch in made:
            read = batch.end
            rejected.extend(batch.rejected)
            duplicates += batch.duplicates
            valid += len(batch.entries)
            domains += batch.domains()
            batches += bool(batch.entries)
    return DryRunReport(read, tuple(rejected), duplicates, valid, batches, domains)

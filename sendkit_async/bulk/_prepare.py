"""Turns any input into validated, deduplicated, size-bounded batches, lazily."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import anyio.lowlevel
import attrs

from sendkit_async._errors import ValidationError
from sendkit_async._validate import all_normal_emails
from sendkit_async.dnc import PreparedEntries
from sendkit_async.models import DncEntry, DncReason, EntryType

from ._report import FailedEntry, RejectedEntry

if TYPE_CHECKING:
    from ._seen import SeenAddresses

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

    def __reduce__(self) -> tuple[Any, ...]:
        return _unreadable, (str(self), self.text)


def _unreadable(message: str, text: str) -> UnreadableItem:
    """Rebuild a pickled :class:`UnreadableItem` (its ``text`` is keyword-only)."""
    return UnreadableItem(message, text=text)


EntrySource = Iterable[Any] | AsyncIterable[Any]
_CHUNK: Final = 2048  # items read, validated and deduplicated at a time
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


@attrs.define
class Batcher:
    """Validates and groups entries.

    Each input item is coerced with :meth:`DncEntry.coerce` (strings, mappings
    or entries; ``reason`` and ``type`` are the defaults for items without their own). Invalid items
    become :class:`RejectedEntry` records with their position; with ``dedupe``,
    an address seen before in the job counts as a duplicate. A batch closes at
    ``batch_size`` entries or when the next entry would take its JSON body
    past ``max_bytes``.

    Deduplication keeps a 128-bit digest of every distinct address of the
    job, 18 to 37 bytes each as the table fills: see :class:`~._seen.SeenAddresses` for the odds
    of a collision (1.5e-23 at 100,000,000 addresses).
    """

    batch_size: int
    max_bytes: int
    dedupe: bool
    reason: DncReason | None = None
    type: EntryType | None = None  # None: inferred per item (``"auto"``)
    _seen: SeenAddresses | None = attrs.field(default=None, init=False, repr=False)

    @property
    def seen(self) -> SeenAddresses:
        """The digests of the addresses the job has seen (made, and numpy imported, on first use)."""
        if self._seen is None:
            from ._seen import SeenAddresses  # noqa: PLC0415 - only a job that dedupes needs numpy

            self._seen = SeenAddresses()
        return self._seen

    async def batches(self, source: EntrySource) -> AsyncGenerator[Batch, None]:
        """Yield batches in input order; memory holds one open batch at a time."""
        cursor = _Cursor(Batch(index=0, start=0))
        async with contextlib.aclosing(_chunks(source)) as chunks:
            async for chunk in chunks:
                if self.dedupe:
                    await self.seen.make_room(len(chunk))
                plain = self._plain(chunk)
                closed = self._slices(cursor, plain) if plain is not None else None
                for batch in closed if closed is not None else self._items(cursor, chunk, plain):
                    yield batch
        cursor.batch.end = cursor.position
        if cursor.batch.end > cursor.batch.start:
            yield cursor.batch
        if self._seen is not None:
            self._seen.forget()  # the input is all read: no more repeats to catch

    def _close(self, cursor: _Cursor, closed: list[Batch]) -> None:
        cursor.batch.end = cursor.position
        closed.append(cursor.batch)
        cursor.batch = Batch(index=cursor.batch.index + 1, start=cursor.position)

    def _plain(self, chunk: list[Any]) -> _Plain | None:
        """A chunk of plain addresses, normalised, with the reason they share; ``None`` to go item by item.

        Plain means strings, or dicts of an ``email`` typed ``email`` (or not
        typed) sharing one reason, each of which :meth:`DncEntry.coerce` would
        make an address entry of, since the address is already normal once
        stripped and lowercased. The columns are read in a few C-speed passes
        instead of coercing item by item, the cost of the usual job.
        """
        if self.type is EntryType.DOMAIN:
            return None
        reason = (self.reason or DncReason.IMPORT).value
        if type(chunk[0]) is dict:
            columns = _email_columns(chunk, reason)
            if columns is None:
                return None
            chunk, reason = columns
        normal = _normalised(chunk)
        return None if normal is None else _Plain(normal, reason)

    def _slices(self, cursor: _Cursor, plain: _Plain) -> list[Batch] | None:
        """A clean chunk in whole slices, or ``None`` when something in it could change a decision.

        That is a repeat (within the chunk, or of an address seen before) or a
        chance of passing the byte bound even in the current batch; then the
        chunk goes item by item, with the same outcome, only slower.
        """
        normal, reason = plain
        count = len(normal)
        if cursor.batch.size + sum(map(len, normal)) + _ENTRY_OVERHEAD * count > self.max_bytes:
            return None
        if self.dedupe:
            fresh = dict.fromkeys(normal)
            if len(fresh) != count or not self.seen.add_if_all_new(fresh):
                return None
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

    def _items(self, cursor: _Cursor, chunk: list[Any], plain: _Plain | None) -> list[Batch]:
        """A chunk item by item: coerce, reject, dedupe, and close batches at the bounds."""
        # This loop may run once per input item: names are bound locally and
        # the size is a cheap upper bound, to keep it lean.
        coerce, reason, kind_given = DncEntry.coerce, self.reason, self.type
        # First what each item is (an entry, or why it is not), then which entries are repeats
        # (one digest lookup for the chunk), then the batches, in input order.
        judged: list[tuple[str, str, str] | RejectedEntry] = []
        position = cursor.position
        for index, item in enumerate(chunk):
            try:
                if plain is not None:
                    judged.append((plain.emails[index], "email", plain.reason))
                elif isinstance(item, Exception):  # a reader's word that this item did not parse
                    raise ValidationError(str(item))  # noqa: TRY301 - one rejection path
                else:
                    entry = coerce(item, reason=reason, type=kind_given)
                    judged.append((entry.email, entry.type.value, entry.reason.value))
            except ValidationError as exc:
                judged.append(RejectedEntry(position + index, _show(item), str(exc)))
        entries = [outcome for outcome in judged if not isinstance(outcome, RejectedEntry)]
        emails = [email for email, _, _ in entries]
        fresh = iter(self.seen.add_many(emails) if self.dedupe else [True] * len(emails))
        closed: list[Batch] = []
        for outcome in judged:
            if isinstance(outcome, RejectedEntry):
                cursor.batch.rejected.append(outcome)
                cursor.position += 1
                continue
            if not next(fresh):
                cursor.batch.duplicates += 1
                cursor.position += 1
                continue
            email, kind, why = outcome
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


class _Plain(NamedTuple):
    """A chunk's addresses, each normalised and valid, and the one reason they share."""

    emails: list[str]
    reason: str


@attrs.define
class _Cursor:
    """The open batch and the input position of the next item."""

    batch: Batch
    position: int = 0


_EMAIL_KEYS: Final = frozenset({"email", "type", "reason"})
_REASON_VALUES: Final = {reason.value: reason.value for reason in DncReason}


def _email_columns(chunk: list[Any], default_reason: str) -> tuple[list[Any], str] | None:
    """The addresses of a chunk of ``{"email": ..., "type": "email", "reason": ...}`` dicts and their reason.

    ``None`` unless every item is a plain ``dict`` with an ``email``, no keys
    but ``type`` and ``reason`` beside it, typed ``email`` or not typed, and
    all with one reason (an API value, or none: ``default_reason``). Then
    each is the entry :meth:`DncEntry.coerce` makes, if its address is plain.
    """
    try:
        if set(map(type, chunk)) != {dict} or not _EMAIL_KEYS.issuperset(set().union(*chunk)):
            return None
        addresses = [item["email"] for item in chunk]
        kinds = {item.get("type") or None for item in chunk}
        reasons = {item.get("reason") or default_reason for item in chunk}
    except (KeyError, TypeError):  # no email, or an unhashable type or reason
        return None
    reason = _REASON_VALUES.get(reasons.pop()) if len(reasons) == 1 else None
    return (addresses, reason) if reason is not None and kinds <= {None, "email"} else None


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

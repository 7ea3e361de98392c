"""In-memory state of the fake server: DNC lists and conversations per workspace."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any, NamedTuple

import attrs

__all__ = ["DncRecordRow", "DncStore", "FakeConversation", "Workspace", "iso_now"]


def iso_now() -> str:
    """The current UTC time as the API writes it (``2024-06-01T10:00:00.000Z``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DncRecordRow(NamedTuple):
    """One stored entry, as the tests see it (the store keeps plain tuples)."""

    id: str
    email: str
    type: str
    reason: str
    created_at: str

    def wire(self, workspace_id: str) -> dict[str, Any]:
        """The entry as ``GET /v1/dnc`` lists it."""
        return {
            "_id": self.id,
            "email": self.email,
            "entryType": self.type,
            "workspaceId": workspace_id,
            "reason": self.reason,
            "unsubscribedAt": self.created_at,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
        }


# A stored row is a plain tuple (cheapest for millions of entries):
# (sequence number, email, type, reason, created_at).
_Row = tuple[int, str, str, str, str]


class DncStore:
    """One workspace's DNC list: unique by address, in id (insertion) order.

    Ids are a fixed 4-byte prefix and an increasing 8-byte counter, so cursor
    paging is a bisect over the counters. The per-type views behind the
    ``type`` filter are caught up lazily, when a filtered listing asks, so an
    import pays for one append per entry. The hex id is only formatted when
    an entry is listed.
    """

    __slots__ = ("_by_email", "_counter", "_prefix", "_rows", "_views")

    def __init__(self, prefix: str, counter: Iterator[int]) -> None:
        self._prefix = prefix
        self._counter = counter
        self._by_email: dict[str, _Row] = {}
        self._rows: list[_Row] = []
        # type -> (rows of that type, how many of self._rows it has seen)
        self._views: dict[str, tuple[list[_Row], int]] = {"email": ([], 0), "domain": ([], 0)}

    def __len__(self) -> int:
        return len(self._by_email)

    def __contains__(self, email: object) -> bool:
        return email in self._by_email

    def emails(self) -> set[str]:
        """Every stored address."""
        return set(self._by_email)

    def add(self, email: str, type_: str, reason: str, created_at: str) -> bool:
        """Store an entry unless its address is already there; ``True`` if stored."""
        return self.add_many([(email, type_, reason)], created_at) == 1

    def add_many(self, rows: list[tuple[str, str, str]], created_at: str) -> int:
        """Store ``(email, type, reason)`` rows, skipping known addresses; return how many were new."""
        by_email, counter, append = self._by_email, self._counter, self._rows.append
        before = len(self._rows)
        for email, type_, reason in rows:
            if email not in by_email:
                row = (next(counter), email, type_, reason, created_at)
                by_email[email] = row
                append(row)
        return len(self._rows) - before

    def remove(self, email: str) -> bool:
        """Take an address off the list; ``True`` if it was there."""
        row = self._by_email.pop(email, None)
        if row is None:
            return False
        at = bisect.bisect_left(self._rows, row[0], key=itemgetter(0))
        del self._rows[at]
        self._views = {"email": ([], 0), "domain": ([], 0)}  # caught up again on the next listing
        return True

    def _view(self, type_: str | None) -> list[_Row]:
        if type_ is None:
            return self._rows
        rows, seen = self._views[type_]
        rows.extend(r for r in self._rows[seen:] if r[2] == type_)
        self._views[type_] = (rows, len(self._rows))
        return rows

    def count(self, type_: str | None) -> int:
        """Entries of one type, or all."""
        return len(self._view(type_))

    def row(self, raw: _Row) -> DncRecordRow:
        """A stored tuple with its id formatted."""
        seq, email, type_, reason, created_at = raw
        return DncRecordRow(self._prefix + format(seq, "016x"), email, type_, reason, created_at)

    def page(self, type_: str | None, page: int, limit: int, *, newest: bool = False) -> list[DncRecordRow]:
        """Entries of page ``page`` (1-based), oldest or newest first."""
        rows, start = self._view(type_), (page - 1) * limit
        if newest:
            end = max(len(rows) - start, 0)
            return [self.row(r) for r in reversed(rows[max(end - limit, 0) : end])]
        return [self.row(r) for r in rows[start : start + limit]]

    def after(
        self, type_: str | None, cursor: str | None, limit: int, *, newest: bool = False
    ) -> list[DncRecordRow]:
        """Up to ``limit`` entries that follow ``cursor`` (a 24-hex id) in the listing's order.

        Oldest first, they are the ids above it; newest first, the ids below.
        The cursor's own entry need not exist any more.
        """
        rows = self._view(type_)
        if cursor is None:
            at = len(rows) if newest else 0
        else:
            prefix, seq = cursor[:8].lower(), int(cursor[8:], 16)
            if prefix != self._prefix:  # an id from elsewhere: compare whole ids
                at = 0 if prefix < self._prefix else len(rows)
            elif newest:
                at = bisect.bisect_left(rows, seq, key=itemgetter(0))
            else:
                at = bisect.bisect_right(rows, seq, key=itemgetter(0))
        if newest:
            return [self.row(r) for r in reversed(rows[max(at - limit, 0) : at])]
        return [self.row(r) for r in rows[at : at + limit]]


@attrs.define
class FakeConversation:
    """A conversation of the fake inbox."""

    id: str
    lead_email: str
    unread: int = 1
    ai_tag: str | None = None
    tags: list[str] = attrs.Factory(list)
    campaign_id: str | None = None

    def matches(self, filters: Mapping[str, Any]) -> bool:
        """Whether the conversation passes ``select_all`` filters (already validated)."""
        for key, wanted in filters.items():
            if key == "campaignId" and self.campaign_id != wanted:
                return False
            if key == "aiTag" and self.ai_tag != wanted:
                return False
            if key == "tag" and wanted not in self.tags:
                return False
            if key == "unread" and (self.unread > 0) != wanted:
                return False
        return True

    def wire(self) -> dict[str, Any]:
        """The conversation as ``PATCH /v1/inbox/{id}`` returns it."""
        return {"id": self.id, "aiTag": self.ai_tag, "tags": list(self.tags)}


@attrs.define
class Workspace:
    """Everything one workspace holds."""

    id: str
    dnc: DncStore
    conversations: dict[str, FakeConversation] = attrs.Factory(dict)


def object_ids(prefix: str, counter: Iterator[int]) -> Iterator[str]:
    """Increasing 24-hex ids, like MongoDB's: a 4-byte prefix, an 8-byte counter."""
    return (prefix + format(n, "016x") for n in counter)

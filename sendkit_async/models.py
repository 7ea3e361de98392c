"""Public data classes: frozen attrs, mapped to the wire by :mod:`._convert`."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

import attrs

from ._errors import ValidationError
from ._rate import RateLimit
from ._validate import normalize_domain, normalize_email

__all__ = [
    "Conversation",
    "DncEntry",
    "DncPage",
    "DncReason",
    "DncRecord",
    "EntryType",
    "EntryTypeOption",
    "ImportResult",
    "InboxDncResult",
    "MarkReadResult",
    "Pagination",
    "RateLimit",
    "ResponseInfo",
]


class EntryType(str, enum.Enum):
    """What a DNC entry blocks: one address, or a whole domain (``str()`` is the value)."""

    EMAIL = "email"
    DOMAIN = "domain"

    def __str__(self) -> str:
        return self.value


class DncReason(str, enum.Enum):
    """Why an entry is on the list (the values the API is known to use; ``str()`` is the value)."""

    UNSUBSCRIBE_LINK = "unsubscribe_link"
    MANUAL = "manual"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    IMPORT = "import"

    def __str__(self) -> str:
        return self.value


def known_reason(value: object) -> DncReason | str:
    """A listed entry's reason: the :class:`DncReason` it names, or the text as sent.

    The pages list five reasons but do not promise there are no others, so a
    reason the SDK does not know yet is kept as a string rather than refused.
    """
    if not isinstance(value, str):
        raise TypeError(f"expected a reason string, got {type(value).__name__}")
    found = _REASONS.get(value)
    return value if found is None else found


class _Model:
    """What every model can do besides holding its fields."""

    __slots__ = ()

    def to_dict(self, *, case: Literal["snake", "camel"] = "snake") -> dict[str, Any]:
        """The model as JSON-ready data: enum values, ISO 8601 timestamps, lists.

        ``case="snake"`` keys are the attribute names (``entry_type``);
        ``case="camel"`` keys are the API's own (``entryType``, ``_id``).
        """
        from ._convert import to_dict  # noqa: PLC0415 - _convert builds on the models' shapes

        return to_dict(self, camel=case == "camel")


@attrs.frozen
class ResponseInfo:
    """The HTTP answer a result came from: ``result.response``.

    Attributes:
        status: the HTTP status (2xx).
        headers: the answer's headers (case-insensitive), rate-limit fields included.
        request_id: the server's request id, when it sent one (redacted like every field).
    """

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    request_id: str | None = None


class _Result(_Model):
    """A model one API answer produced: it keeps that answer's :class:`ResponseInfo`."""

    __slots__ = ()

    @property
    def request_id(self) -> str | None:
        """The request id of the answer this came from (``None`` if it sent none, or summed several)."""
        response: ResponseInfo | None = getattr(self, "response", None)
        return None if response is None else response.request_id


# A result's response is not a wire field: never read from a body, never in to_dict().
_LOCAL: Final = {"local": True}


E = TypeVar("E", bound=enum.Enum)


def _lookup(kind: type[E]) -> dict[object, E]:
    # Members, their values and their names all map to the member: a dict hit
    # is far cheaper than Enum.__call__, which matters at millions of entries.
    table: dict[object, E] = {}
    for member in kind:
        table.update({member: member, member.value: member, member.name.lower(): member})
    return table


_ENTRY_TYPES = _lookup(EntryType)
_REASONS = _lookup(DncReason)


def _member(table: dict[object, E], value: object, what: str) -> E:
    found = table.get(value)
    if found is None and isinstance(value, str):
        found = table.get(value.strip().lower())
    if found is None:
        allowed = ", ".join(sorted({str(m.value) for m in table.values()}))
        raise ValidationError(f"invalid {what} {value!r}: expected one of {allowed}")
    return found


def _entry_type(value: object) -> EntryType:
    return _member(_ENTRY_TYPES, value, "entry type")


def _reason(value: object) -> DncReason:
    return _member(_REASONS, value, "reason")


def _infer_type(entry: DncEntry) -> EntryType:
    return EntryType.EMAIL if "@" in str(entry.email) else EntryType.DOMAIN


EntryTypeOption = Literal["auto", "email", "domain"] | EntryType
"""An import's ``type=``: the type of every item that does not state its own.

``"email"``: each is an address, and a value without ``@`` is rejected (it
looks like a domain) instead of blocking a whole domain by accident.
``"domain"``: each is a whole domain. ``"auto"``: a value with ``@`` is an
address, one without is a domain (the rule :class:`DncEntry` applies when
its type is left out).
"""


def entry_type_option(value: object) -> EntryType | None:
    """An import's ``type=`` setting as the type it forces, ``None`` for ``"auto"``.

    Raises:
        ValidationError: not ``auto``, ``email`` or ``domain``.
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    if not isinstance(value, (str, EntryType)):
        raise ValidationError(f"type must be 'auto', 'email' or 'domain', got {type(value).__name__}")
    try:
        return _entry_type(value)
    except ValidationError:
        raise ValidationError(f"type must be 'auto', 'email' or 'domain', got {value!r}") from None


@attrs.frozen
class DncEntry(_Model):
    """One entry to put on the Do Not Contact list.

    The address is stripped and lowercased (as the API does), the type is
    inferred when left out (no ``@`` means a domain), and the reason defaults
    to ``import``. Anything invalid raises :class:`ValidationError`.

    Example:
        >>> DncEntry(" Bounce@Example.com ").email
        'bounce@example.com'
        >>> DncEntry("spamtrap.com").type
        <EntryType.DOMAIN: 'domain'>
    """

    email: str
    type: EntryType = attrs.field(
        default=attrs.Factory(_infer_type, takes_self=True),
        converter=_entry_type,
    )
    reason: DncReason = attrs.field(default=DncReason.IMPORT, converter=_reason)

    def __attrs_post_init__(self) -> None:
        # Frozen class: the normalised address replaces the input once, here.
        object.__setattr__(self, "email", _normalize(self.email, self.type))

    @classmethod
    def _trusted(cls, email: str, type_: EntryType, reason: DncReason) -> DncEntry:
        """Build from values already normalised and checked (the bulk hot path)."""
        entry = object.__new__(cls)
        object.__setattr__(entry, "email", email)
        object.__setattr__(entry, "type", type_)
        object.__setattr__(entry, "reason", reason)
        return entry

    @classmethod
    def coerce(
        cls,
        value: DncEntry | str | Mapping[str, Any],
        *,
        reason: object = None,
        type: EntryType | None = None,  # noqa: A002 - the entry's own field name
    ) -> DncEntry:
        """Build an entry from an entry, a plain string, or a mapping.

        A mapping takes ``email`` (or ``domain``), ``type`` and ``reason``, and
        nothing else: another key is refused, naming it, rather than dropped,
        since a misspelt ``"reasn"`` would otherwise lose its reason without a
        word. (The command line keeps only those columns of a file.) A
        mapping's ``domain`` key makes a domain entry.
        ``reason`` and ``type`` are the defaults for inputs without their own
        (``type=None`` infers it: ``@`` or not, see :data:`EntryTypeOption`).
        """
        if isinstance(value, DncEntry):
            return value
        # Same checks as __init__, without its overhead: this runs per entry of
        # every bulk job.
        if isinstance(value, str):
            address, given_type, given_reason = value, None, reason
        elif isinstance(value, Mapping):
            if len(value) > len(ENTRY_FIELDS) or not ENTRY_FIELDS.issuperset(value):
                unknown = sorted(str(key) for key in value if key not in ENTRY_FIELDS)
                raise ValidationError(
                    f"unknown field(s) {', '.join(unknown)}; an entry takes email, type, reason"
                )
            address = value.get("email", value.get("domain"))
            if not isinstance(address, str):
                raise ValidationError("entry has no 'email' string")
            given_type = value.get("type") or ("domain" if "email" not in value else None)
            given_reason = value.get("reason") or reason
        else:
            raise ValidationError(f"cannot make a DNC entry from {value.__class__.__name__}")
        if given_type is None:
            kind = type or (EntryType.EMAIL if "@" in address else EntryType.DOMAIN)
        else:
            kind = _entry_type(given_type)
        chosen = DncReason.IMPORT if given_reason is None else _reason(given_reason)
        return cls._trusted(_normalize(address, kind), kind, chosen)


ENTRY_FIELDS: Final = frozenset({"email", "domain", "type", "reason"})


def _normalize(address: object, kind: EntryType) -> str:
    if not isinstance(address, str):
        raise ValidationError(f"entry address must be a string, got {type(address).__name__}")
    if kind is EntryType.DOMAIN:
        return normalize_domain(address)
    if "@" not in address:
        raise ValidationError(
            f"{address.strip()!r} has no '@': it looks like a domain, not an email address; "
            "to block the whole domain, import it with type domain (or type auto)"
        )
    return normalize_email(address)


@attrs.frozen
class ImportResult(_Result):
    """Counts from one ``POST /v1/dnc/import``."""

    imported: int
    skipped: int
    response: ResponseInfo | None = attrs.field(
        default=None, eq=False, repr=False, kw_only=True, metadata=_LOCAL
    )


@attrs.frozen
class DncRecord(_Model):
    """An entry as ``GET /v1/dnc`` lists it."""

    id: str = attrs.field(metadata={"wire": "_id"})
    email: str
    entry_type: EntryType
    reason: DncReason | str = attrs.field(converter=known_reason, metadata={"converted": True})
    workspace_id: str | None = None
    unsubscribed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@attrs.frozen
class Pagination(_Model):
    """Paging data of a list answer; fields the server did not send are ``None``.

    Page mode sends ``total/page/limit/pages``; cursor mode may add
    ``next_cursor`` and ``has_more``.
    """

    total: int | None = None
    page: int | None = None
    limit: int | None = None
    pages: int | None = None
    next_cursor: str | None = None
    has_more: bool | None = None


@attrs.frozen
class DncPage(_Result):
    """One page of DNC entries with its pagination data."""

    items: tuple[DncRecord, ...]
    pagination: Pagination
    response: ResponseInfo | None = attrs.field(
        default=None, eq=False, repr=False, kw_only=True, metadata=_LOCAL
    )


@attrs.frozen
class InboxDncResult(_Result):
    """Counts from ``POST /v1/inbox/dnc``."""

    added: int
    skipped: int
    total: int
    response: ResponseInfo | None = attrs.field(
        default=None, eq=False, repr=False, kw_only=True, metadata=_LOCAL
    )


@attrs.frozen
class MarkReadResult(_Result):
    """Count from ``POST /v1/inbox/mark-read``."""

    modified: int
    response: ResponseInfo | None = attrs.field(
        default=None, eq=False, repr=False, kw_only=True, metadata=_LOCAL
    )


@attrs.frozen
class Conversation(_Result):
    """A conversation as ``PATCH /v1/inbox/{id}`` returns it."""

    id: str
    ai_tag: str | None = None
    tags: tuple[str, ...] = ()
    response: ResponseInfo | None = attrs.field(
        default=None, eq=False, repr=False, kw_only=True, metadata=_LOCAL
    )

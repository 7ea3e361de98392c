"""Coroutine functions for the inbox endpoints, each fed a :class:`~._session.Session`.

* ``POST /v1/inbox/dnc``: :func:`add_leads_to_dnc`
* ``POST /v1/inbox/mark-read``: :func:`mark_read`
* ``PATCH /v1/inbox/{id}``: :func:`update`

The two POSTs take a *selection*: explicit conversation ids, or
``select_all=True`` with optional ``filters`` and ``exclude_ids``. The pages
leave ``filters`` open, so it is passed through as given (a JSON object).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ._convert import envelope_data, structure
from ._errors import ValidationError
from ._session import Session
from ._types import JSON, NOT_GIVEN, NotGiven
from ._validate import is_object_id
from .models import Conversation, InboxDncResult, MarkReadResult

__all__ = ["add_leads_to_dnc", "check_ids", "mark_read", "selection_body", "update"]


def check_ids(ids: Iterable[str], what: str = "conversation id") -> list[str]:
    """Materialise and validate 24-hex ids, or raise :class:`ValidationError`."""
    if isinstance(ids, str):
        raise ValidationError(f"expected a list of {what}s, got a single string")
    try:
        checked = list(ids)
    except TypeError:
        raise ValidationError(f"expected a list of {what}s, got {type(ids).__name__}") from None
    for index, value in enumerate(checked):
        if not is_object_id(value):
            raise ValidationError(f"{what} [{index}] {value!r} is not a 24-hex-digit id")
    return checked


def selection_body(
    conversation_ids: Iterable[str] | None,
    *,
    select_all: bool,
    filters: Mapping[str, Any] | None,
    exclude_ids: Iterable[str] | None,
) -> dict[str, JSON]:
    """The wire body of a selection, validated.

    Raises:
        ValidationError: both or neither of ids and ``select_all``, an empty
            id list, ``filters``/``exclude_ids`` without ``select_all``, a
            malformed id, a ``select_all`` that is not a boolean (``"false"``
            would select every conversation), or filters that are not a
            mapping of names to strings, booleans, finite numbers or None.
    """
    if not isinstance(select_all, bool):
        raise ValidationError(f"select_all must be True or False, got {select_all!r}")
    if conversation_ids is not None and select_all:
        raise ValidationError("pass conversation_ids or select_all=True, not both")
    if conversation_ids is None and not select_all:
        raise ValidationError("pass conversation_ids, or select_all=True to select every conversation")
    if conversation_ids is not None:
        if filters is not None or exclude_ids is not None:
            raise ValidationError("filters and exclude_ids apply only with select_all=True")
        ids = check_ids(conversation_ids)
        if not ids:
            raise ValidationError("conversation_ids is empty")
        return {"conversationIds": ids}
    body: dict[str, JSON] = {"selectAll": True}
    if filters is not None:
        body["filters"] = _check_filters(filters)
    if exclude_ids is not None:
        body["excludeIds"] = check_ids(exclude_ids, "excluded id")
    return body


MAX_TAG_LENGTH: Final = 256


def _check_tag(tag: object, name: str, expected: str) -> None:
    if not isinstance(tag, str) or not tag.strip():
        raise ValidationError(f"{name} must be {expected}, got {tag!r:.80}")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValidationError(
            f"{name} is {len(tag):,} characters long; the SDK sends at most {MAX_TAG_LENGTH}"
        )
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in tag):  # noqa: PLR2004 - C0 and C1 controls
        raise ValidationError(f"{name} holds a control character: {tag!r:.80}")


def _check_filters(filters: object) -> dict[str, JSON]:
    if not isinstance(filters, Mapping):
        raise ValidationError(f"filters must be a mapping, got {type(filters).__name__}")
    checked: dict[str, JSON] = {}
    for name, value in filters.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"filter names must be non-empty strings, got {name!r}")
        finite = not isinstance(value, float) or math.isfinite(value)
        if not (value is None or isinstance(value, (str, bool, int, float))) or not finite:
            raise ValidationError(
                f"filter {name!r} must be a string, boolean, finite number or None, got {value!r}"
            )
        checked[name] = value
    return checked


async def add_leads_to_dnc(
    session: Session,
    conversation_ids: Iterable[str] | None = None,
    *,
    select_all: bool = False,
    filters: Mapping[str, Any] | None = None,
    exclude_ids: Iterable[str] | None = None,
) -> InboxDncResult:
    """Put the leads of the selected conversations on the DNC list (existing ones are skipped).

    Raises:
        ValidationError: see :func:`selection_body`; nothing is sent.
    """
    body = selection_body(conversation_ids, select_all=select_all, filters=filters, exclude_ids=exclude_ids)
    return structure(envelope_data(await session.request("POST", "/v1/inbox/dnc", json=body)), InboxDncResult)


async def mark_read(
    session: Session,
    conversation_ids: Iterable[str] | None = None,
    *,
    select_all: bool = False,
    filters: Mapping[str, Any] | None = None,
    exclude_ids: Iterable[str] | None = None,
) -> MarkReadResult:
    """Mark the unread lead replies of the selected conversations as read.

    Raises:
        ValidationError: see :func:`selection_body`; nothing is sent.
    """
    body = selection_body(conversation_ids, select_all=select_all, filters=filters, exclude_ids=exclude_ids)
    answer = await session.request("POST", "/v1/inbox/mark-read", json=body)
    return structure(envelope_data(answer), MarkReadResult)


async def update(
    session: Session,
    conversation_id: str,
    *,
    mark_read: bool | NotGiven = NOT_GIVEN,
    ai_tag: str | NotGiven | None = NOT_GIVEN,
    tags: Sequence[str] | NotGiven = NOT_GIVEN,
) -> Conversation:
    """Update one conversation with ``PATCH /v1/inbox/{id}``.

    Only the arguments given are sent: ``ai_tag=None`` removes the AI tag,
    leaving ``ai_tag`` out keeps it. ``tags`` replaces the custom tags (the
    page does not document merging, so the SDK does not promise it). The
    page names no length limits; the SDK refuses a tag longer than 256
    characters or holding control characters, which no inbox would show.

    Raises:
        ValidationError: a malformed id, a wrong type, an oversized or
            unprintable tag, or nothing to update.
        NotFoundError: no conversation has that id.
    """
    if not is_object_id(conversation_id):
        raise ValidationError(f"conversation id {conversation_id!r} is not a 24-hex-digit id")
    body: dict[str, JSON] = {}
    if not isinstance(mark_read, NotGiven):
        if not isinstance(mark_read, bool):
            raise ValidationError("mark_read must be True or False")
        body["markRead"] = mark_read
    if not isinstance(ai_tag, NotGiven):
        if ai_tag is not None:
            _check_tag(ai_tag, "ai_tag", "a non-empty string, or None to remove it")
        body["aiTag"] = ai_tag
    if not isinstance(tags, NotGiven):
        if not isinstance(tags, (list, tuple)):
            raise ValidationError(f"tags must be a list of non-empty strings, got {type(tags).__name__}")
        for index, tag in enumerate(tags):
            _check_tag(tag, f"tags[{index}]", "a non-empty string")
        body["tags"] = list(tags)
    if not body:
        raise ValidationError("nothing to update: pass mark_read, ai_tag or tags")
    answer = await session.request("PATCH", f"/v1/inbox/{conversation_id}", json=body)
    return structure(envelope_data(answer), Conversation)

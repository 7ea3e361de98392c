"""Coroutine functions for the inbox endpoints, each fed a :class:`~._session.Session`.

* ``POST /v1/inbox/dnc``: :func:`add_leads_to_dnc`
* ``POST /v1/inbox/mark-read``: :func:`mark_read`
* ``PATCH /v1/inbox/{id}``: :func:`update`

The two POSTs take a *selection*: explicit conversation ids, or
``select_all=True`` with optional ``filters`` and ``exclude_ids``. The pages
leave ``filters`` open, so it is passed through as given (a JSON object).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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
    checked = list(ids)
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
            id list, ``filters``/``exclude_ids`` without ``select_all``, or a
            malformed id.
    """
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
        if not isinstance(filters, Mapping):
            raise ValidationError("filters must be a mapping")
        body["filters"] = dict(filters)
    if exclude_ids is not None:
        body["excludeIds"] = check_ids(exclude_ids, "excluded id")
    return body


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
    page does not document merging, so the SDK does not promise it).

    Raises:
        ValidationError: a malformed id, a wrong type, or nothing to update.
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
        if ai_tag is not None and (not isinstance(ai_tag, str) or not ai_tag.strip()):
            raise ValidationError("ai_tag must be a non-empty string, or None to remove it")
        body["aiTag"] = ai_tag
    if not isinstance(tags, NotGiven):
        if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
            raise ValidationError("tags must be a list of non-empty strings")
        body["tags"] = list(tags)
    if not body:
        raise ValidationError("nothing to update: pass mark_read, ai_tag or tags")
    answer = await session.request("PATCH", f"/v1/inbox/{conversation_id}", json=body)
    return structure(envelope_data(answer), Conversation)

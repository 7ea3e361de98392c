"""Coroutine functions for the inbox endpoints, each fed a :class:`~._session.Session`.

* ``POST /v1/inbox/dnc``: :func:`add_leads_to_dnc`
* ``POST /v1/inbox/mark-read``: :func:`mark_read`
* ``PATCH /v1/inbox/{id}``: :func:`update`

The two POSTs take a *selection*: explicit conversation ids, or
``select_all=True`` with optional ``filters`` and ``exclude_ids``. The pages
leave ``filters`` open, so it is passed through as given (a JSON object of
names to plain values). More explicit ids than ``max_ids_per_request`` go out
in chunks, as many at a time as ``concurrency`` allows (``"auto"``: see
:mod:`._flow`) in the rate budget's bulk lane, and the
counts are summed; the calls are idempotent, so if a chunk fails after its
retries the others are cancelled and its error raised, and repeating the
whole call is safe. Each signature here is the only one: the client's
``client.inbox`` binds these functions to its session.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from ._budget import Lane
from ._config import DEFAULT_CONCURRENCY, DEFAULT_IDS_PER_REQUEST, Timeout
from ._convert import structure_answer, unstructure
from ._errors import ValidationError
from ._fanout import fan_out
from ._flow import Concurrency, check_concurrency
from ._requests import ConversationPatch, Selection
from ._session import Session
from ._types import JSON, NOT_GIVEN, NotGiven
from ._validate import check_whole, is_object_id
from .models import Conversation, InboxDncResult, MarkReadResult

__all__ = ["add_leads_to_dnc", "check_ids", "is_object_id", "mark_read", "selection", "update"]

T = TypeVar("T")


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


def selection(
    conversation_ids: Iterable[str] | None,
    *,
    select_all: object,
    filters: object,
    exclude_ids: Iterable[str] | None,
) -> Selection:
    """A validated selection.

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
        return Selection(conversation_ids=ids)
    return Selection(
        select_all=True,
        filters=None if filters is None else _check_filters(filters),
        exclude_ids=None if exclude_ids is None else check_ids(exclude_ids, "excluded id"),
    )


async def _select(
    session: Session,
    path: str,
    result: type[T],
    chosen: Selection,
    *,
    max_ids_per_request: int,
    concurrency: Concurrency,
) -> list[T]:
    """Send a selection, in chunks of ids when it has more than ``max_ids_per_request``."""
    check_whole("max_ids_per_request", max_ids_per_request, minimum=1)
    check_concurrency(concurrency)
    ids = chosen.conversation_ids

    async def send(part: Selection, via: Session = session) -> T:
        reply = await via.request("POST", path, json=unstructure(part))
        return structure_answer(reply.data, result, reply.response)

    if ids is None or len(ids) <= max_ids_per_request:
        return [await send(chosen)]
    limiter = session.scope.in_flight(concurrency)
    paced = session.with_options(lane=Lane.BULK).with_hooks(limiter)
    chunks = [
        Selection(conversation_ids=ids[i : i + max_ids_per_request])
        for i in range(0, len(ids), max_ids_per_request)
    ]
    parts: list[T] = []

    async def keep(part: T) -> None:
        parts.append(part)

    # The first chunk that fails cancels the others, and its error is raised.
    await fan_out(chunks, lambda chunk: send(chunk, paced), limiter=limiter, deliver=keep)
    return parts


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
    max_ids_per_request: int = DEFAULT_IDS_PER_REQUEST,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    timeout: Timeout | float | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> InboxDncResult:
    """Put the leads of the selected conversations on the DNC list (leads already there are skipped).

    Example:
        >>> result = await client.inbox.add_leads_to_dnc(["664a1b2c3d4e5f6a7b8c9d0e"])  # doctest: +SKIP
        >>> result.added, result.skipped  # doctest: +SKIP

    Raises:
        ValidationError: see :func:`selection`; nothing is sent.
    """
    chosen = selection(conversation_ids, select_all=select_all, filters=filters, exclude_ids=exclude_ids)
    parts = await _select(
        session.per_call(timeout, extra_headers),
        "/v1/inbox/dnc",
        InboxDncResult,
        chosen,
        max_ids_per_request=max_ids_per_request,
        concurrency=concurrency,
    )
    if len(parts) == 1:
        return parts[0]
    return InboxDncResult(  # summed over chunks: no one response
        added=sum(p.added for p in parts),
        skipped=sum(p.skipped for p in parts),
        total=sum(p.total for p in parts),
    )


async def mark_read(
    session: Session,
    conversation_ids: Iterable[str] | None = None,
    *,
    select_all: bool = False,
    filters: Mapping[str, Any] | None = None,
    exclude_ids: Iterable[str] | None = None,
    max_ids_per_request: int = DEFAULT_IDS_PER_REQUEST,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    timeout: Timeout | float | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> MarkReadResult:
    """Mark the unread lead replies of the selected conversations as read.

    Example:
        >>> await client.inbox.mark_read(select_all=True, filters={"campaignId": "c1"})  # doctest: +SKIP

    Raises:
        ValidationError: see :func:`selection`; nothing is sent.
    """
    chosen = selection(conversation_ids, select_all=select_all, filters=filters, exclude_ids=exclude_ids)
    parts = await _select(
        session.per_call(timeout, extra_headers),
        "/v1/inbox/mark-read",
        MarkReadResult,
        chosen,
        max_ids_per_request=max_ids_per_request,
        concurrency=concurrency,
    )
    if len(parts) == 1:
        return parts[0]
    return MarkReadResult(modified=sum(p.modified for p in parts))  # summed over chunks: no one response


def patch(
    *,
    mark_read: bool | NotGiven = NOT_GIVEN,
    ai_tag: str | NotGiven | None = NOT_GIVEN,
    tags: Sequence[str] | NotGiven = NOT_GIVEN,
) -> ConversationPatch:
    """The validated changes of :func:`update` (also used by ``update_many``)."""
    if not isinstance(mark_read, NotGiven) and not isinstance(mark_read, bool):
        raise ValidationError("mark_read must be True or False")
    if not isinstance(ai_tag, NotGiven) and ai_tag is not None:
        _check_tag(ai_tag, "ai_tag", "a non-empty string, or None to remove it")
    checked_tags: list[str] | NotGiven = NOT_GIVEN
    if not isinstance(tags, NotGiven):
        if not isinstance(tags, (list, tuple)):
            raise ValidationError(f"tags must be a list of non-empty strings, got {type(tags).__name__}")
        for index, tag in enumerate(tags):
            _check_tag(tag, f"tags[{index}]", "a non-empty string")
        checked_tags = list(tags)
    changes = ConversationPatch(mark_read=mark_read, ai_tag=ai_tag, tags=checked_tags)
    if changes == ConversationPatch():
        raise ValidationError("nothing to update: pass mark_read, ai_tag or tags")
    return changes


async def update(
    session: Session,
    conversation_id: str,
    *,
    mark_read: bool | NotGiven = NOT_GIVEN,
    ai_tag: str | NotGiven | None = NOT_GIVEN,
    tags: Sequence[str] | NotGiven = NOT_GIVEN,
    timeout: Timeout | float | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Conversation:
    """Update one conversation with ``PATCH /v1/inbox/{id}``.

    Only the arguments given are sent: ``ai_tag=None`` removes the AI tag,
    leaving ``ai_tag`` out keeps it. ``tags`` replaces the custom tags (the
    page does not document merging, so the SDK does not promise it). The
    page names no length limits; the SDK refuses a tag longer than 256
    characters or holding control characters, which no inbox would show.

    Example:
        >>> await client.inbox.update("664a1b2c3d4e5f6a7b8c9d0e", ai_tag=None)  # doctest: +SKIP

    Raises:
        ValidationError: a malformed id, a wrong type, an oversized or
            unprintable tag, or nothing to update.
        NotFoundError: no conversation has that id.
    """
    if not is_object_id(conversation_id):
        raise ValidationError(f"conversation id {conversation_id!r} is not a 24-hex-digit id")
    body = unstructure(patch(mark_read=mark_read, ai_tag=ai_tag, tags=tags))
    reply = await session.per_call(timeout, extra_headers).request(
        "PATCH", f"/v1/inbox/{conversation_id}", json=body
    )
    return structure_answer(reply.data, Conversation, reply.response)

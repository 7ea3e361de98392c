"""Request bodies as attrs classes, so the one converter maps them to the wire like every model.

A field left at its default is not sent: ``NOT_GIVEN`` means "leave it as it
is", while an explicit ``None`` goes out as ``null`` (``aiTag: null`` removes
the tag).
"""

from __future__ import annotations

from typing import Any

import attrs

from ._types import JSON, NOT_GIVEN, NotGiven

__all__ = ["ConversationPatch", "Selection"]


@attrs.frozen
class Selection:
    """Which conversations an inbox call acts on: explicit ids, or all of them with filters."""

    conversation_ids: list[str] | None = None
    select_all: bool = False
    filters: dict[str, JSON] | None = None
    exclude_ids: list[str] | None = None


@attrs.frozen
class ConversationPatch:
    """The changes of ``PATCH /v1/inbox/{id}``."""

    mark_read: bool | NotGiven = NOT_GIVEN
    ai_tag: str | NotGiven | None = NOT_GIVEN
    tags: list[str] | NotGiven = NOT_GIVEN


REQUESTS: tuple[type[Any], ...] = (Selection, ConversationPatch)

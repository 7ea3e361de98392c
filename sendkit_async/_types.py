"""Small shared types: the "not given" sentinel and JSON aliases."""

from __future__ import annotations

from typing import Any, Final, TypeAlias, final

__all__ = ["JSON", "NOT_GIVEN", "NotGiven"]

JSON: TypeAlias = Any
"""A decoded JSON value (orjson gives dicts, lists, str, int, float, bool, None)."""


@final
class NotGiven:
    """Marks an argument the caller left out, as opposed to one set to ``None``.

    ``client.inbox.update(cid, ai_tag=None)`` removes the AI tag, while
    ``client.inbox.update(cid, mark_read=True)`` leaves it alone.
    """

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()

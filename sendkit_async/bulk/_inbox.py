"""The bulk engine for the inbox: one update applied to many conversations, paced like imports.

(Large selections are chunked by the selection endpoints themselves, in :mod:`sendkit_async.inbox`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from sendkit_async import inbox
from sendkit_async._budget import Lane
from sendkit_async._config import DEFAULT_CONCURRENCY, DEFAULT_IDS_PER_REQUEST
from sendkit_async._errors import AuthenticationError, PermissionDeniedError, SendKitError
from sendkit_async._fanout import fan_out
from sendkit_async._flow import Concurrency, check_concurrency
from sendkit_async._session import Session
from sendkit_async._types import NOT_GIVEN, NotGiven
from sendkit_async.models import Conversation

__all__ = ["DEFAULT_IDS_PER_REQUEST", "UpdateOutcome", "update_many"]


@attrs.frozen
class UpdateOutcome:
    """What :func:`update_many` did for one id: the updated conversation, or the typed error."""

    id: str
    conversation: Conversation | None = None
    error: SendKitError | None = None

    @property
    def ok(self) -> bool:
        """Whether the update landed."""
        return self.error is None


async def update_many(
    session: Session,
    conversation_ids: Sequence[str],
    *,
    mark_read: bool | NotGiven = NOT_GIVEN,
    ai_tag: str | NotGiven | None = NOT_GIVEN,
    tags: Sequence[str] | NotGiven = NOT_GIVEN,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
) -> list[UpdateOutcome]:
    """PATCH many conversations alike, as many at a time as ``concurrency`` allows, in the budget's bulk lane.

    Every id is validated first (a malformed one raises before anything is
    sent). Each outcome holds the conversation or the error for that id; after
    a 401 or 403 the ids not yet sent get that same error without being sent.
    """
    ids = inbox.check_ids(conversation_ids)
    inbox.patch(
        mark_read=mark_read, ai_tag=ai_tag, tags=tags
    )  # the same changes for every id: check them once
    limiter = session.scope.in_flight(check_concurrency(concurrency))
    paced = session.with_options(lane=Lane.BULK).with_hooks(limiter)
    outcomes: list[UpdateOutcome] = []
    fatal: list[SendKitError] = []

    async def one(conversation_id: str) -> UpdateOutcome:
        if fatal:
            return UpdateOutcome(conversation_id, error=fatal[0])
        try:
            updated = await inbox.update(
                paced, conversation_id, mark_read=mark_read, ai_tag=ai_tag, tags=tags
            )
        except SendKitError as exc:
            if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
                fatal.append(exc)
            return UpdateOutcome(conversation_id, error=exc)
        return UpdateOutcome(conversation_id, conversation=updated)

    async def keep(outcome: UpdateOutcome) -> None:
        outcomes.append(outcome)

    await fan_out(ids, one, limiter=limiter, deliver=keep, ordered=True)
    return outcomes

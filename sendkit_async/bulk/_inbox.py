"""The bulk engine for the inbox: chunked selections and many updates, paced like imports."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol, TypeVar

import anyio
import attrs

from sendkit_async import inbox
from sendkit_async._budget import Lane
from sendkit_async._errors import AuthenticationError, PermissionDeniedError, SendKitError, ValidationError
from sendkit_async._session import Session
from sendkit_async._types import NOT_GIVEN, NotGiven
from sendkit_async.models import Conversation

from ._engine import DEFAULT_CONCURRENCY

__all__ = [
    "DEFAULT_IDS_PER_REQUEST",
    "SelectionCall",
    "UpdateOutcome",
    "run_chunked",
    "select",
    "update_many",
]

DEFAULT_IDS_PER_REQUEST: Final = 1_000
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class SelectionCall(Protocol[T_co]):
    """The shape of :func:`sendkit_async.inbox.mark_read` and ``add_leads_to_dnc``."""

    def __call__(
        self,
        session: Session,
        conversation_ids: Iterable[str] | None = None,
        *,
        select_all: bool = False,
        filters: Mapping[str, Any] | None = None,
        exclude_ids: Iterable[str] | None = None,
    ) -> Awaitable[T_co]: ...


def _at_least_one(**settings: object) -> None:
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"{name} must be a whole number, at least 1, got {value!r}")


def _paced(session: Session) -> Session:
    return session.with_options(lane=Lane.BULK)


async def select(
    session: Session,
    call: SelectionCall[T],
    conversation_ids: Iterable[str] | None,
    *,
    select_all: bool,
    filters: Mapping[str, Any] | None,
    exclude_ids: Iterable[str] | None,
    chunk_size: int,
    concurrency: int,
) -> list[T]:
    """Run a selection call (``mark_read``, ``add_leads_to_dnc``) and return its results.

    One request, unless more than ``chunk_size`` explicit ids were given:
    then chunks go out concurrently (see :func:`run_chunked`). The selection
    is validated whole before anything is sent.
    """
    ids = None if conversation_ids is None else inbox.check_ids(conversation_ids)
    inbox.selection_body(ids, select_all=select_all, filters=filters, exclude_ids=exclude_ids)
    _at_least_one(max_ids_per_request=chunk_size, concurrency=concurrency)
    if ids is None or len(ids) <= chunk_size:
        return [await call(session, ids, select_all=select_all, filters=filters, exclude_ids=exclude_ids)]
    return await run_chunked(session, ids, call, chunk_size=chunk_size, concurrency=concurrency)


async def run_chunked(
    session: Session,
    ids: Sequence[str],
    call: SelectionCall[T],
    *,
    chunk_size: int,
    concurrency: int,
) -> list[T]:
    """Send ``ids`` in chunks of ``chunk_size``, ``concurrency`` at a time, in the budget's bulk lane.

    Returns the chunks' results in chunk order. If a chunk fails after its
    retries, the others are cancelled and its error is raised; the inbox calls
    are idempotent, so repeating the whole call is safe.
    """
    _at_least_one(chunk_size=chunk_size, concurrency=concurrency)
    paced = _paced(session)
    chunks = [list(ids[i : i + chunk_size]) for i in range(0, len(ids), chunk_size)]
    results: list[T | None] = [None] * len(chunks)
    errors: list[SendKitError] = []
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int, task_group: anyio.abc.TaskGroup) -> None:
        async with limiter:
            try:
                results[index] = await call(paced, chunks[index])
            except SendKitError as exc:
                errors.append(exc)
                task_group.cancel_scope.cancel()

    async with anyio.create_task_group() as task_group:
        for index in range(len(chunks)):
            task_group.start_soon(one, index, task_group)
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


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
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[UpdateOutcome]:
    """PATCH many conversations alike, ``concurrency`` at a time, in the budget's bulk lane.

    Every id is validated first (a malformed one raises before anything is
    sent). Each outcome holds the conversation or the error for that id; after
    a 401 or 403 the ids not yet sent get that same error without being sent.
    """
    ids = inbox.check_ids(conversation_ids)
    _at_least_one(concurrency=concurrency)
    paced = _paced(session)
    outcomes: list[UpdateOutcome] = [UpdateOutcome(i) for i in ids]
    fatal: list[SendKitError] = []
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int) -> None:
        async with limiter:
            if fatal:
                outcomes[index] = UpdateOutcome(ids[index], error=fatal[0])
                return
            try:
                updated = await inbox.update(paced, ids[index], mark_read=mark_read, ai_tag=ai_tag, tags=tags)
            except SendKitError as exc:
                if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
                    fatal.append(exc)
                outcomes[index] = UpdateOutcome(ids[index], error=exc)
            else:
                outcomes[index] = UpdateOutcome(ids[index], conversation=updated)

    async with anyio.create_task_group() as task_group:
        for index in range(len(ids)):
            task_group.start_soon(one, index)
    return outcomes

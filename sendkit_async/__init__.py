"""sendkit_async: an asyncio-native SDK for the SendKit cold-email API.

The names a program writes every day: the client, its options, the models,
the errors and the import report. The rest is one level down:
:mod:`sendkit_async.bulk` (the import engine's settings, reports, checkpoints
and their errors), :mod:`sendkit_async.budget` (the shared rate budget and its
clock), :mod:`sendkit_async.transport` (the wire), :mod:`sendkit_async.testing`
(a fake server, a mock transport, a fake clock).
"""

from __future__ import annotations

from ._config import ClientConfig, RetryPolicy, Timeout
from ._errors import (
    AnswerTooLargeError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetTimeoutError,
    ClientClosedError,
    ClientLoopError,
    ConfigurationError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    SendKitError,
    TransportError,
    TransportTimeoutError,
    UnexpectedResponseError,
    UnprocessableEntityError,
    ValidationError,
)
from ._types import NOT_GIVEN, NotGiven
from ._version import VERSION as __version__  # noqa: N811 - the dunder every package has
from .bulk import FailedEntry, ImportOptions, ImportReport
from .client import SendKit
from .models import (
    Conversation,
    DncEntry,
    DncPage,
    DncReason,
    DncRecord,
    EntryType,
    ImportResult,
    InboxDncResult,
    MarkReadResult,
    Pagination,
    RateLimit,
    ResponseInfo,
)

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AnswerTooLargeError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetTimeoutError",
    "ClientClosedError",
    "ClientConfig",
    "ClientLoopError",
    "ConfigurationError",
    "ConflictError",
    "Conversation",
    "DncEntry",
    "DncPage",
    "DncReason",
    "DncRecord",
    "EntryType",
    "FailedEntry",
    "ImportOptions",
    "ImportReport",
    "ImportResult",
    "InboxDncResult",
    "InternalServerError",
    "MarkReadResult",
    "NotFoundError",
    "NotGiven",
    "Pagination",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "RedirectError",
    "ResponseInfo",
    "RetryPolicy",
    "SendKit",
    "SendKitError",
    "Timeout",
    "TransportError",
    "TransportTimeoutError",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
    "ValidationError",
    "__version__",
]

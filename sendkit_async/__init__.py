"""sendkit_async: an asyncio-native SDK for the SendKit cold-email API."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._clock import Clock, SystemClock
from ._config import ClientConfig, RetryPolicy, Timeout
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    ImportAbortedError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SendKitError,
    UnexpectedResponseError,
    UnprocessableEntityError,
    ValidationError,
)
from ._types import NOT_GIVEN, NotGiven
from .bulk import (
    BatchResult,
    FailedEntry,
    FailureKind,
    ImportProgress,
    ImportReport,
    RejectedEntry,
    UpdateOutcome,
)
from .client import DncAPI, InboxAPI, SendKit
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
)

try:
    __version__ = version("sendkit-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchResult",
    "ClientClosedError",
    "ClientConfig",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "Conversation",
    "DncAPI",
    "DncEntry",
    "DncPage",
    "DncReason",
    "DncRecord",
    "EntryType",
    "FailedEntry",
    "FailureKind",
    "ImportAbortedError",
    "ImportProgress",
    "ImportReport",
    "ImportResult",
    "InboxAPI",
    "InboxDncResult",
    "InternalServerError",
    "MarkReadResult",
    "NotFoundError",
    "NotGiven",
    "Pagination",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "RejectedEntry",
    "RetryPolicy",
    "SendKit",
    "SendKitError",
    "SystemClock",
    "Timeout",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
    "UpdateOutcome",
    "ValidationError",
    "__version__",
]

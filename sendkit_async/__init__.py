"""sendkit_async: an asyncio-native SDK for the SendKit cold-email API."""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from ._budget import BudgetSnapshot, Lane, LocalBudget, Observation, Permit, RateBudget, RateCap, Shape
from ._clock import Clock, SystemClock
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
from ._transport import AiohttpTransport, AsyncTransport, WireRequest, WireResponse
from ._types import NOT_GIVEN, NotGiven
from ._version import VERSION as __version__  # noqa: N811 - the dunder every package has
from .bulk import (
    BatchResult,
    CheckpointLostError,
    CheckpointMismatchError,
    CheckpointStore,
    CheckpointUnavailableError,
    DryRunReport,
    FailedEntry,
    FailureKind,
    ImportAbortedError,
    ImportOptions,
    ImportProgress,
    ImportReport,
    ImportSettings,
    JobLeaseHeldError,
    JobLeaseLostError,
    NotACheckpointError,
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
    ResponseInfo,
)

if _typing.TYPE_CHECKING:
    from ._budget._redis import RedisBudget
    from .bulk._redis_store import RedisCheckpoints

_LAZY = {
    "RedisBudget": "sendkit_async._budget._redis",
    "RedisCheckpoints": "sendkit_async.bulk._redis_store",
}


def __getattr__(name: str) -> _typing.Any:
    """``RedisBudget`` and ``RedisCheckpoints`` are imported on first use: they need the ``redis`` extra."""
    if name in _LAZY:
        try:
            module = _importlib.import_module(_LAZY[name])
        except ImportError as exc:
            raise ImportError(f"{name} needs the redis extra: pip install 'sendkit-async[redis]'") from exc
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AiohttpTransport",
    "AnswerTooLargeError",
    "AsyncTransport",
    "AuthenticationError",
    "BadRequestError",
    "BatchResult",
    "BudgetSnapshot",
    "BudgetTimeoutError",
    "CheckpointLostError",
    "CheckpointMismatchError",
    "CheckpointStore",
    "CheckpointUnavailableError",
    "ClientClosedError",
    "ClientConfig",
    "ClientLoopError",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "Conversation",
    "DncAPI",
    "DncEntry",
    "DncPage",
    "DncReason",
    "DncRecord",
    "DryRunReport",
    "EntryType",
    "FailedEntry",
    "FailureKind",
    "ImportAbortedError",
    "ImportOptions",
    "ImportProgress",
    "ImportReport",
    "ImportResult",
    "ImportSettings",
    "InboxAPI",
    "InboxDncResult",
    "InternalServerError",
    "JobLeaseHeldError",
    "JobLeaseLostError",
    "Lane",
    "LocalBudget",
    "MarkReadResult",
    "NotACheckpointError",
    "NotFoundError",
    "NotGiven",
    "Observation",
    "Pagination",
    "PermissionDeniedError",
    "Permit",
    "RateBudget",
    "RateCap",
    "RateLimit",
    "RateLimitError",
    "RedirectError",
    "RedisBudget",
    "RedisCheckpoints",
    "RejectedEntry",
    "ResponseInfo",
    "RetryPolicy",
    "SendKit",
    "SendKitError",
    "Shape",
    "SystemClock",
    "Timeout",
    "TransportError",
    "TransportTimeoutError",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
    "UpdateOutcome",
    "ValidationError",
    "WireRequest",
    "WireResponse",
    "__version__",
]

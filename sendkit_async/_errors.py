"""The exceptions sendkit_async raises: the whole tree (``[bulk]``: defined in ``bulk/_errors.py``).

::

    SendKitError
    ├── ConfigurationError ............ bad client settings, raised before any request
    ├── ValidationError (ValueError) .. bad arguments, raised before sending
    │   └── CheckpointMismatchError ... [bulk] the checkpoint is another job's (settings, input, account)
    ├── ClientClosedError ............. the client was used after close()
    ├── ClientLoopError ............... the client was used from an event loop it was not opened in
    ├── BudgetTimeoutError ............ a call waited past max_queue_wait for its rate-budget slot
    ├── UnexpectedResponseError ....... a 2xx answer that is not the documented shape
    ├── ImportAbortedError ............ [bulk] a bulk import stopped on a fatal error; has .report
    ├── CheckpointUnavailableError .... [bulk] the checkpoint store could not be read or written
    ├── NotACheckpointError ........... [bulk] the store holds something else under the job's name
    ├── JobLeaseHeldError ............. [bulk] another process runs the job; has .holder
    ├── JobLeaseLostError ............. [bulk] this process lost the job's lease, so it stopped
    │   └── CheckpointLostError ....... [bulk] Redis lost the lease and the checkpoint (a restart)
    ├── APIConnectionError ............ no HTTP answer: refused, dropped, DNS, TLS
    │   └── APITimeoutError ........... no answer in time
    ├── TransportError ................ a transport's word for "no answer" (the session
    │   │                               turns it into APIConnectionError; never raised to you)
    │   ├── TransportTimeoutError ..... a transport's "no answer in time" (→ APITimeoutError)
    │   └── AnswerTooLargeError ....... an answer past max_answer_bytes (→ APIConnectionError)
    └── APIStatusError ................ the API answered with an error status
        ├── RedirectError .............. 3xx: not followed, so the key never leaves the origin
        ├── BadRequestError ............ 400
        ├── AuthenticationError ........ 401
        ├── PermissionDeniedError ...... 403
        ├── NotFoundError .............. 404
        ├── ConflictError .............. 409
        ├── UnprocessableEntityError ... 422
        ├── RateLimitError ............. 429
        └── InternalServerError ........ >= 500

The bulk errors live in ``sendkit_async/bulk/_errors.py`` because they carry
bulk types (a report, a lease holder) and the core never reaches up into
``bulk/``; a test holds this drawing and the classes in step.

"No answer" errors stay apart from status errors: a dropped connection may or
may not have reached the server, while a status error is the server's word.
Messages never contain the API key; any echo of it in a body is redacted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._rate import RateLimit

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AnswerTooLargeError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetTimeoutError",
    "ClientClosedError",
    "ClientLoopError",
    "ConfigurationError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedirectError",
    "SendKitError",
    "TransportError",
    "TransportTimeoutError",
    "UnexpectedResponseError",
    "UnprocessableEntityError",
    "ValidationError",
    "status_error_class",
]


def _rebuild(cls: type[SendKitError], args: tuple[Any, ...]) -> SendKitError:
    """An error of ``cls`` with ``args``, its fields to be set from the pickled state."""
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    return error


class SendKitError(Exception):
    """Root of every error this SDK raises.

    Every one pickles and unpickles to an equal error (same class, message
    and fields; the key stays redacted, as it never was in them), so errors
    travel through multiprocessing, arq and Celery results.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own reduce calls cls(*args), which keyword-only fields refuse.
        return _rebuild, (type(self), self.args), dict(vars(self))


class ConfigurationError(SendKitError):
    """The client's settings are unusable (missing key, wrong workspace rules, bad URL)."""


class ValidationError(SendKitError, ValueError):
    """An argument failed client-side validation; nothing was sent."""


class ClientClosedError(SendKitError, RuntimeError):
    """The client was closed and cannot send requests any more."""


class ClientLoopError(SendKitError, RuntimeError):
    """The client was used from an event loop other than the one it was opened in.

    A client's connection pool, rate budget and background tasks belong to one
    event loop. A client made at module level and used from several
    ``asyncio.run()`` calls, or from pytest-asyncio's per-test loops, meets
    this: make one client per event loop (in a fixture, or in your web app's
    lifespan).
    """


class BudgetTimeoutError(SendKitError):
    """The call waited longer than ``max_queue_wait`` for its slot in the rate budget.

    The attempt it waited for was never sent (earlier attempts of the same
    call may have been, and were answered with a retryable error).

    Attributes:
        method, path: the call.
        waited: seconds the call spent waiting for slots, all attempts together.
        limit: the ``max_queue_wait`` in force.
    """

    def __init__(self, message: str, *, method: str, path: str, waited: float, limit: float) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.waited = waited
        self.limit = limit


class UnexpectedResponseError(SendKitError):
    """The API answered 2xx with a body that is not the documented shape."""

    def __init__(self, message: str, *, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class APIConnectionError(SendKitError):
    """No HTTP answer arrived: the connection failed or was dropped.

    Attributes:
        connected: whether a connection to the server was made: ``False``
            when it could not be (refused, no such host, a failed TLS
            handshake), so the request certainly never reached the server.
    """

    def __init__(self, message: str, *, method: str, path: str, connected: bool = True) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.connected = connected


class APITimeoutError(APIConnectionError):
    """The request did not complete within its timeout."""


class TransportError(SendKitError):
    """Raised by an :class:`~sendkit_async.transport.AsyncTransport`'s ``send`` when no answer came.

    The session makes it an :class:`APIConnectionError` (redacted, with the
    method and path), so callers never see it; a transport of your own
    raises it for a failed connection, with ``connected=False`` when no
    connection could be made at all.
    """

    def __init__(self, message: str, *, connected: bool = True) -> None:
        super().__init__(message)
        self.connected = connected


class TransportTimeoutError(TransportError):
    """Raised by a transport when no answer came within the request's timeout (→ :class:`APITimeoutError`)."""


class AnswerTooLargeError(TransportError):
    """Raised by a transport for an answer whose body (or its inflated form) is past its bound.

    The connection is dropped; the session retries as for a dropped
    connection (→ :class:`APIConnectionError`).
    """


class APIStatusError(SendKitError):
    """The API answered with a non-2xx status.

    Attributes:
        status: the HTTP status.
        error: the body's ``error`` field (``"Not Found"``), if any.
        message: the body's ``message`` (or an RFC 7807 ``detail``), else a
            short excerpt of a non-JSON body.
        code: the body's ``code`` field, if any.
        request_id: from ``X-Request-Id`` (or a similar header), if present.
        rate_limit: the rate-limit headers of this answer, if present.
        retry_after: seconds the server asked to wait, if it said.
        body: the raw body text, with any echo of the API key redacted.
    """

    def __init__(
        self,
        *,
        status: int,
        method: str,
        path: str,
        error: str | None,
        message: str,
        code: Any,
        request_id: str | None,
        rate_limit: RateLimit | None,
        retry_after: float | None,
        body: str,
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.error = error
        self.message = message
        self.code = code
        self.request_id = request_id
        self.rate_limit = rate_limit
        self.retry_after = retry_after
        self.body = body
        text = f"{method} {path} -> {status}"
        if error:
            text += f" {error}"
        if message:
            text += f": {message}"
        if request_id:
            text += f" (request id {request_id})"
        super().__init__(text)


class RedirectError(APIStatusError):
    """3xx: the API (or something in front of it) sent the request elsewhere.

    Redirects are never followed: the request would carry the API key to
    wherever ``Location`` points. ``location`` names it (with any echo of the
    key redacted); point ``base_url`` there yourself if you trust it.
    """

    location: str | None = None

    def __str__(self) -> str:
        where = f"; Location: {self.location}" if self.location else ""
        return f"{super().__str__()}{where} (not followed, so the API key stays with the configured origin)"


class BadRequestError(APIStatusError):
    """400: the request was malformed or failed server-side validation."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not act on this workspace or resource."""


class NotFoundError(APIStatusError):
    """404: no such resource (for example an unknown conversation id)."""


class ConflictError(APIStatusError):
    """409: the request conflicts with concurrent work; safe to retry."""


class UnprocessableEntityError(APIStatusError):
    """422: well-formed but semantically invalid."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` says how long to wait."""


class InternalServerError(APIStatusError):
    """A 5xx answer: the server or a gateway failed."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The most specific error class for an HTTP status."""
    if status >= 500:  # noqa: PLR2004 - the 5xx family
        return InternalServerError
    if 300 <= status < 400:  # noqa: PLR2004 - the 3xx family
        return RedirectError
    return _BY_STATUS.get(status, APIStatusError)

"""OpenTelemetry spans, when the ``otel`` extra is installed (``pip install 'sendkit-async[otel]'``).

A span per HTTP attempt, ``sendkit {METHOD} {route}``, with the method, the
route template (ids become ``{id}``), the status, the retry count, the request
id and the seconds spent waiting for the rate budget (a hook of the session:
:class:`Tracing`); and a span per bulk job, ``sendkit dnc.import_bulk``, with
the job's counts. Never the API key. Without the package, there is no hook
and :func:`job_span` costs nothing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from ._hooks import Attempt
from ._version import VERSION

__all__ = ["Tracing", "job_span", "route_of", "tracing"]

try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - the extra is optional
    _tracer: Any = None
else:
    _tracer = _trace.get_tracer("sendkit_async", VERSION)

_ID = re.compile(r"/[0-9a-fA-F]{24}(?=/|$)")


def route_of(path: str) -> str:
    """The route template of a path: ``/v1/inbox/664a...`` becomes ``/v1/inbox/{id}``."""
    return _ID.sub("/{id}", path)


class Tracing:
    """The session hook that wraps each attempt in a span (the current one: instrumented I/O nests in it)."""

    __slots__ = ()

    @contextlib.contextmanager
    def attempt(self, attempt: Attempt) -> Iterator[None]:
        """A span around one attempt, with its outcome as attributes."""
        route = route_of(attempt.path)
        name = f"sendkit {attempt.method} {route}"
        with _tracer.start_as_current_span(name, kind=_trace.SpanKind.CLIENT) as span:
            try:
                yield
            finally:
                values = {
                    "http.request.method": attempt.method,
                    "url.path": route,
                    "http.response.status_code": attempt.status if attempt.answered else None,
                    "sendkit.retry_count": attempt.number - 1,
                    "sendkit.request_id": attempt.request_id,
                    "sendkit.budget_wait_seconds": attempt.waited,
                }
                span.set_attributes({key: value for key, value in values.items() if value is not None})
                if not attempt.answered or (attempt.status or 0) >= 400:  # noqa: PLR2004
                    span.set_status(_trace.StatusCode.ERROR)


def tracing() -> tuple[Tracing, ...]:
    """The tracing hook when OpenTelemetry is installed, else none."""
    return () if _tracer is None else (Tracing(),)


@contextlib.contextmanager
def job_span(name: str) -> Iterator[dict[str, Any]]:
    """A span around a bulk job; the caller fills the yielded attributes (its counts)."""
    if _tracer is None:
        yield {}
        return
    with _tracer.start_as_current_span(f"sendkit {name}") as span:
        attributes: dict[str, Any] = {}
        try:
            yield attributes
        finally:
            span.set_attributes(attributes)

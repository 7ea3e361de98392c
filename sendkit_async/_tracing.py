"""OpenTelemetry spans, when the ``otel`` extra is installed (``pip install 'sendkit-async[otel]'``).

A span per HTTP attempt, ``sendkit {METHOD} {route}``, with the method, the
route template (ids become ``{id}``), the status, the retry count, the request
id and the seconds spent waiting for the rate budget; and a span per bulk job,
``sendkit dnc.import_bulk``, with the job's counts. Never the API key. Without
the package, these are no-ops at no cost.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ._version import VERSION

__all__ = ["attempt_span", "job_span", "record_attempt", "route_of"]

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


@contextlib.contextmanager
def attempt_span(method: str, path: str) -> Iterator[dict[str, Any]]:
    """A span around one HTTP attempt; the caller fills the yielded attributes."""
    if _tracer is None:
        yield {}
        return
    route = route_of(path)
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": route}
    with _tracer.start_as_current_span(f"sendkit {method} {route}", kind=_trace.SpanKind.CLIENT) as span:
        yield attributes
        span.set_attributes(attributes)
        status = attributes.get("http.response.status_code")
        if status is None or status >= 400:  # noqa: PLR2004
            span.set_status(_trace.StatusCode.ERROR)


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


def record_attempt(attributes: dict[str, Any], values: Mapping[str, Any]) -> None:
    """Add an attempt's outcome to its span's attributes (values that are ``None`` are left out)."""
    attributes.update({key: value for key, value in values.items() if value is not None})

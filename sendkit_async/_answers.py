"""What an answer comes to: the decoded body of a 2xx, or the typed error of any other status.

Beside :mod:`._errors`, which holds the classes: this module reads a
:class:`~._transport.WireResponse` (the documented ``{"error", "message",
"code"}`` body, RFC 7807 problem documents, gateways' nested errors, HTML
error pages as a short excerpt) and redacts any echo of the API key, once,
for every field an error carries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from ._errors import APIStatusError, RedirectError, UnexpectedResponseError, status_error_class
from ._fields import parse_retry_after
from ._rate import RateLimit
from ._throttle import policy_window, retry_after_in_body
from ._transport import WireResponse
from ._types import JSON

__all__ = [
    "decode",
    "excerpt",
    "json_body",
    "redact",
    "redact_headers",
    "redact_json",
    "request_id",
    "status_error",
]

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-correlation-id", "x-amzn-requestid")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_EXCERPT = 200
_LONG_POLICY = 3600.0


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``[redacted]``."""
    return text.replace(secret, "[redacted]") if secret and secret in text else text


def redact_json(value: Any, secret: str) -> Any:
    """A decoded JSON value with ``secret`` redacted in every string of it, keys included."""
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, dict):
        return {redact_json(key, secret): redact_json(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item, secret) for item in value]
    return value


def redact_headers(headers: CIMultiDictProxy[str], secret: str) -> CIMultiDictProxy[str]:
    """An answer's headers with ``secret`` redacted in every name and value (a server may echo the key)."""
    if not any(secret in name or secret in value for name, value in headers.items()):
        return headers
    return CIMultiDictProxy(
        CIMultiDict((redact(name, secret), redact(value, secret)) for name, value in headers.items())
    )


def excerpt(text: str) -> str:
    """A body as one short line of plain text (tags and runs of space removed, 200 characters at most)."""
    plain = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return plain if len(plain) <= _EXCERPT else plain[: _EXCERPT - 1] + "…"


def request_id(response: WireResponse, key: str) -> str | None:
    """The answer's request id (``X-Request-Id`` or a similar header), redacted."""
    found = next((response.headers[h] for h in _REQUEST_ID_HEADERS if h in response.headers), None)
    return None if found is None else redact(found, key)


def decode(response: WireResponse, key: str) -> JSON:
    """A 2xx body as JSON (``None`` when empty), else an :class:`UnexpectedResponseError`, returned."""
    raw = response.body
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = redact(raw.decode("utf-8", "replace"), key)
        return UnexpectedResponseError(
            f"the API answered {response.status} with a body that is not JSON: {excerpt(text)!r}",
            status=response.status,
            body=text,
        )


def json_body(response: WireResponse) -> Any:
    """The answer's body as JSON, or ``None`` when it is not JSON."""
    try:
        return orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return None


def _retry_after(headers: Mapping[str, str], decoded: Any, wall: float) -> float | None:
    """The wait an error answer asks for.

    ``Retry-After``, else one its body names (Smartlead's way), else, when
    the body names a policy of an hour or more (HubSpot's ``DAILY``), that
    policy's length: the refusal may last that long, so a call gives up at
    once rather than ask again every second for a day.
    """
    found = parse_retry_after(headers, wall)
    if found is None:
        found = retry_after_in_body(decoded)
    policy = policy_window(decoded)
    if found is None and policy is not None and policy >= _LONG_POLICY:
        return policy
    return found


def status_error(
    response: WireResponse,
    *,
    method: str,
    path: str,
    key: str,
    rate: RateLimit | None,
    request_id: str | None,
    wall: float,
) -> APIStatusError:
    """The typed error a non-2xx answer comes to; ``request_id`` is already redacted, ``wall`` reads dates."""
    text = response.body.decode("utf-8", "replace")
    error: str | None = None
    message = ""
    code: Any = None
    decoded = json_body(response)
    if isinstance(decoded, dict):
        # The documented shape is {"error", "message", "code"}; RFC 7807
        # problem documents say "title" and "detail" instead.
        raw_error = decoded.get("error", decoded.get("title"))
        if isinstance(raw_error, dict):  # {"error": {"message": ...}} from some gateways
            message = str(raw_error.get("message", ""))
            raw_error = raw_error.get("type") or raw_error.get("code")
        error = None if raw_error is None else str(raw_error)
        message = str(decoded.get("message") or decoded.get("detail") or message)
        code = decoded.get("code", decoded.get("status"))
    headers = response.headers
    if not message:
        message = excerpt(text) or (headers.get("Reason") or "")
    # Everything below came from the answer, which may echo the key back.
    exc = status_error_class(response.status)(
        status=response.status,
        method=method,
        path=path,
        error=None if error is None else redact(error, key),
        message=redact(message, key),
        code=redact_json(code, key),
        request_id=request_id,
        rate_limit=rate,
        retry_after=_retry_after(headers, decoded, wall),
        body=redact(text, key),
    )
    if isinstance(exc, RedirectError):
        location = headers.get("Location")
        exc.location = None if location is None else redact(location, key)
    return exc

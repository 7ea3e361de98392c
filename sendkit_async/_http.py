"""What the session may put on the wire, checked before anything is sent.

Header names are RFC 9110 tokens and values hold no CR, LF or other control
character (so no header can be injected); the framing headers
(``Content-Length``, ``Transfer-Encoding``, ``Host``, ``Connection``) are
the transport's. The auth headers are the client's own: given among extra
headers they are left out, never sent. A method is one of HTTP's; a path
starts with ``/`` and holds no scheme, authority, query, fragment or
``..`` segment (the key goes to the configured origin only); query values
are plain scalars.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from typing import Final

from ._config import Timeout
from ._errors import ConfigurationError, SendKitError, ValidationError
from ._types import NotGiven

__all__ = ["AUTH_HEADERS", "as_timeout", "check_headers", "check_method", "check_path", "query"]

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII, space and tab: what every HTTP stack sends unchanged.
_VALUE: Final = re.compile(r"[\t\x20-\x7e]*")
_FRAMING: Final = frozenset({"content-length", "transfer-encoding", "host", "connection"})
AUTH_HEADERS: Final = frozenset({"x-api-key", "authorization", "x-workspace-id"})
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_PATH: Final = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")
MAX_HEADERS: Final = 64


def check_headers(value: object, name: str, error: type[SendKitError] = ValidationError) -> dict[str, str]:
    """``value`` as headers to send (auth headers left out), or ``error`` naming what is wrong.

    Raises:
        ValidationError: (or ``error``) not a mapping of header names to
            strings; a name that is not a token; a value with a control
            character or outside ASCII; a framing header; too many.
    """
    if not isinstance(value, Mapping):
        raise error(f"{name} must be a mapping of header names to values, got {type(value).__name__}")
    if len(value) > MAX_HEADERS:
        raise error(f"{name} holds {len(value)} headers; at most {MAX_HEADERS}")
    checked: dict[str, str] = {}
    for key, text in value.items():
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            raise error(f"{name}: {key!r:.60} is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
        if not isinstance(text, str):
            raise error(f"{name}: the value of {key} must be a string, got {type(text).__name__}")
        if not _VALUE.fullmatch(text):
            raise error(
                f"{name}: the value of {key} holds a line break, a control character or a non-ASCII "
                "character; header values are visible ASCII"
            )
        lowered = key.lower()
        if lowered in _FRAMING:
            raise error(f"{name} may not set {key}: the transport frames the request")
        if lowered not in AUTH_HEADERS:
            checked[key] = text
    return checked


def check_method(value: object) -> str:
    """An HTTP method, upper-cased.

    Raises:
        ValidationError: anything else.
    """
    if not isinstance(value, str) or value.upper() not in _METHODS:
        raise ValidationError(f"method must be one of {', '.join(sorted(_METHODS))}, got {value!r:.40}")
    return value.upper()


def check_path(value: object) -> str:
    """An API path such as ``/v1/dnc``.

    Raises:
        ValidationError: not a string starting with ``/``, or holding a
            scheme, ``//``, a query, a fragment, a ``..`` segment or a character
            a URL path cannot hold unencoded.
    """
    if not isinstance(value, str) or not _PATH.fullmatch(value) or value.startswith("//"):
        raise ValidationError(f"path must be an API path such as '/v1/dnc', got {value!r:.80}")
    if ".." in value.split("/") or "://" in value:
        raise ValidationError(f"path must stay under the base URL, got {value!r:.80}")
    return value


def query(params: object) -> dict[str, str]:
    """Query parameters as strings (``None`` and not-given values left out).

    Raises:
        ValidationError: not a mapping of names to strings, whole or finite
            numbers, booleans or enum members.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ValidationError(f"params must be a mapping, got {type(params).__name__}")
    found: dict[str, str] = {}
    for key, value in params.items():
        if not isinstance(key, str) or not key:
            raise ValidationError(f"query parameter names must be non-empty strings, got {key!r:.40}")
        if value is None or isinstance(value, NotGiven):
            continue
        if isinstance(value, bool):
            found[key] = "true" if value else "false"
        elif isinstance(value, enum.Enum):
            found[key] = str(value.value)
        elif isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            found[key] = str(value)
        elif isinstance(value, float) and math.isfinite(value):
            found[key] = repr(value)
        else:
            raise ValidationError(f"query parameter {key!r} must be a plain value, got {value!r:.40}")
    return found


def as_timeout(value: object, *, error: type[SendKitError] = ValidationError) -> Timeout:
    """``value`` (a :class:`Timeout`, seconds for each attempt, or ``None`` for the defaults) as a Timeout.

    Raises:
        ValidationError: (or ``error``) anything else, or seconds that are
            not a positive, finite number.
    """
    if value is None:
        return Timeout()
    if isinstance(value, Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"timeout must be seconds or a Timeout, got {type(value).__name__}")
    try:
        return Timeout(total=float(value))
    except ConfigurationError as exc:
        raise error(str(exc)) from None

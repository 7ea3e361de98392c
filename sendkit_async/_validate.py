"""Syntax checks shared by the models, the bulk engine and the fake server.

Deliberately pragmatic rather than RFC 5322-complete: the API stores
addresses for suppression, so the checks reject what can never be delivered
(no ``@``, empty parts, bad labels) and accept everything a mail server would.
"""

from __future__ import annotations

import math
import re
from typing import Final

from ._errors import ValidationError

__all__ = [
    "all_normal_emails",
    "check_seconds",
    "check_whole",
    "is_object_id",
    "normalize_domain",
    "normalize_email",
]

MAX_EMAIL_LENGTH: Final = 254
MAX_LOCAL_LENGTH: Final = 64
MAX_DOMAIN_LENGTH: Final = 253

_LOCAL_PATTERN = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN_PATTERN = rf"(?:{_LABEL}\.)+(?:[a-z]{{2,63}}|xn--[a-z0-9-]{{1,59}})"
_LOCAL = re.compile(_LOCAL_PATTERN)
_DOMAIN = re.compile(_DOMAIN_PATTERN)
# One match for the common case (ASCII, already well-formed); the bulk engine
# validates millions of addresses, so the slow path runs only when this fails.
_EMAIL = re.compile(rf"{_LOCAL_PATTERN}@{_DOMAIN_PATTERN}")
# Many normalised addresses joined by newlines, each within the length limits.
_LIMITS = rf"(?=[^@\n]{{1,{MAX_LOCAL_LENGTH}}}@)(?=[^\n]{{1,{MAX_EMAIL_LENGTH}}}(?:\n|\Z))"
_ONE_PER_LINE = rf"{_LIMITS}{_LOCAL_PATTERN}@{_DOMAIN_PATTERN}"
_EMAIL_LINES = re.compile(rf"{_ONE_PER_LINE}(?:\n{_ONE_PER_LINE})*")
# The cheap tier of all_normal_emails: lines this short cannot pass a limit.
_SHORT: Final = 64
_PLAIN_LINE = r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9.-]+\.(?:[a-z]{2,}|xn--[a-z0-9-]+)"
_PLAIN_LINES = re.compile(rf"{_PLAIN_LINE}(?:\n{_PLAIN_LINE})*")
_AS_DOTS = bytes.maketrans(b"@\n", b"..")
_OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")


def normalize_domain(value: str) -> str:
    """Strip, lowercase and IDNA-encode a domain, or raise :class:`ValidationError`."""
    domain = value.strip().lower().rstrip(".")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValidationError(f"invalid domain {value!r}") from None
    if len(domain) > MAX_DOMAIN_LENGTH or not _DOMAIN.fullmatch(domain):
        raise ValidationError(f"invalid domain {value!r}")
    return domain


def normalize_email(value: str) -> str:
    """Strip and lowercase an address, or raise :class:`ValidationError`."""
    email = value.strip().lower()
    if len(email) <= MAX_EMAIL_LENGTH and _EMAIL.fullmatch(email) and email.index("@") <= MAX_LOCAL_LENGTH:
        return email
    local, at, domain = email.rpartition("@")
    if not at or not local or len(local) > MAX_LOCAL_LENGTH or not _LOCAL.fullmatch(local):
        raise ValidationError(f"invalid email address {value!r}")
    if domain != domain.strip():  # "a@ b.com": a space inside the address, not padding around it
        raise ValidationError(f"invalid email address {value!r}")
    try:
        email = f"{local}@{normalize_domain(domain)}"
    except ValidationError:
        raise ValidationError(f"invalid email address {value!r}") from None
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValidationError(f"invalid email address {value!r}: longer than 254 characters")
    return email


def all_normal_emails(emails: list[str]) -> bool:
    """Whether every string is already a normalised, valid address.

    A fast path for batches: ``False`` means "check them one by one", not
    that any is invalid. Two tiers, both one pass over the joined text:
    first a cheap one for the usual list (every address at most 64
    characters, so no part can pass a length limit, and the dot and hyphen
    rules checked as substrings), then the full pattern with its limits.
    """
    joined = "\n".join(emails)
    # An item holding a newline would pass as two lines: count them too.
    if joined != joined.lower() or joined.count("\n") != len(emails) - 1:
        return False
    return _short_and_plain(emails, joined) or _EMAIL_LINES.fullmatch(joined) is not None


def _short_and_plain(emails: list[str], joined: str) -> bool:
    """The cheap tier: stricter than :data:`_EMAIL` (never accepts what it refuses), and 3x faster.

    Each line is ``local@domain.tld`` over the allowed characters; then, with
    ``@`` and newlines read as dots, no two dots touch and none opens or
    closes the text (no empty atom or label), and no hyphen touches a dot
    (no label starts or ends with one; this also refuses a local part that
    starts or ends with ``-``, which the full tier then accepts).
    """
    if max(map(len, emails), default=0) > _SHORT or _PLAIN_LINES.fullmatch(joined) is None:
        return False
    text = joined.encode("ascii")  # the pattern admits ASCII only
    marks = text.translate(_AS_DOTS)
    if b".." in marks or marks.startswith(b".") or marks.endswith((b".", b"-")):
        return False
    return b"-" not in text or (b".-" not in marks and b"-." not in marks)


def check_whole(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> None:
    """Refuse anything but an ``int`` (a ``bool`` is not one), or one outside ``minimum..maximum``.

    Raises:
        ValidationError: naming the argument and what it was given.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        bounds = "" if minimum is None else f", at least {minimum:,}"
        bounds += "" if maximum is None else f", at most {maximum:,}"
        raise ValidationError(f"{name} must be a whole number{bounds}, got {value!r:.40}")


def check_seconds(name: str, value: object, *, above: float | None = None, finite: bool = True) -> float:
    """``value`` as seconds: a number, more than ``above`` (without it, 0 or more), and finite unless told.

    Raises:
        ValidationError: naming the argument and what it was given.
    """
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        in_range = value > above if above is not None else value >= 0  # NaN is in no range
        if in_range and (math.isfinite(value) or not finite):
            return float(value)
    bound = "0 or more" if above is None else f"more than {above:g}"
    kind = "finite number" if finite else "number"
    raise ValidationError(f"{name} must be a {kind} of seconds, {bound}, got {value!r}")


def is_object_id(value: object) -> bool:
    """Whether ``value`` is a 24-hex-digit id as the API issues them."""
    return isinstance(value, str) and _OBJECT_ID.fullmatch(value) is not None

"""What the fake server accepts, written from the API pages, sharing nothing with the client's checks.

The client validates before it sends (``sendkit_async._validate``); the fake
judges what arrives on its own terms, so a mistake in the client's rules
shows up as a refusal in the tests instead of being agreed with. The rules:

- An address is ``local@domain``, lowercased (the import page: "Emails are
  lowercased"). The local part is dot-separated runs of RFC 5322 atext, at
  most 64 characters; the domain is at least two labels of letters, digits
  and inner hyphens, 63 characters each, whose last is alphabetic (or an
  IDNA ``xn--`` label); a Unicode domain is IDNA-encoded; the whole at most
  254 characters.
- A domain entry is such a domain alone.
- Ids (conversation ids, cursors) are 24 hexadecimal digits, as the pages'
  examples are (MongoDB ObjectIds).
- Reasons are those seen in use (the seeds' README): ``unsubscribe_link``,
  ``manual``, ``bounce``, ``complaint`` and ``import``.
"""

from __future__ import annotations

import re
import string
from typing import Final

__all__ = ["REASONS", "address", "all_plain_addresses", "domain", "is_id"]

REASONS: Final = frozenset({"unsubscribe_link", "manual", "bounce", "complaint", "import"})

_ATEXT: Final = frozenset(string.ascii_lowercase + string.digits + "!#$%&'*+/=?^_`{|}~-")
_LABEL_CHARACTERS: Final = frozenset(string.ascii_lowercase + string.digits + "-")
_HEX: Final = frozenset(string.hexdigits)
_ID_LENGTH: Final = 24
_LOCAL_MAX: Final = 64
_LABEL_MAX: Final = 63
_DOMAIN_MAX: Final = 253
_ADDRESS_MAX: Final = 254
# The batch fast path: many short, plain addresses, one per line. Everything it accepts, the
# entry-by-entry rules accept too (lines of at most 64 characters cannot break a length limit).
_PLAIN_LINE: Final = r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,24}"
_PLAIN_LINES: Final = re.compile(rf"{_PLAIN_LINE}(?:\n{_PLAIN_LINE})*")
_PLAIN_MAX: Final = 64


def is_id(value: object) -> bool:
    """Whether ``value`` is 24 hexadecimal digits."""
    return isinstance(value, str) and len(value) == _ID_LENGTH and _HEX.issuperset(value)


def _label(text: str) -> bool:
    return (
        0 < len(text) <= _LABEL_MAX
        and _LABEL_CHARACTERS.issuperset(text)
        and not text.startswith("-")
        and not text.endswith("-")
    )


def domain(text: str) -> str | None:
    """The domain lowercased (IDNA-encoded when Unicode), or ``None`` when it is not one."""
    name = text.strip().lower().removesuffix(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = name.split(".")
    if len(name) > _DOMAIN_MAX or len(labels) < 2 or not all(map(_label, labels)):  # noqa: PLR2004
        return None
    top = labels[-1]
    if not ((top.isalpha() and len(top) >= 2) or top.startswith("xn--")):  # noqa: PLR2004
        return None
    return name


def address(text: str) -> str | None:
    """The address lowercased (its domain IDNA-encoded when Unicode), or ``None`` when it is not one."""
    local, at, rest = text.strip().lower().rpartition("@")
    if not at or not local or len(local) > _LOCAL_MAX:
        return None
    if any(not atom or not _ATEXT.issuperset(atom) for atom in local.split(".")):
        return None
    host = domain(rest) if rest.strip() == rest else None
    if host is None:
        return None
    normal = f"{local}@{host}"
    return normal if len(normal) <= _ADDRESS_MAX else None


def all_plain_addresses(addresses: list[str]) -> bool:
    """Whether every item is a short, plain, lowercased address (``False``: judge them one by one)."""
    if not addresses or max(map(len, addresses)) > _PLAIN_MAX:
        return False
    joined = "\n".join(addresses)
    return joined.count("\n") == len(addresses) - 1 and _PLAIN_LINES.fullmatch(joined) is not None

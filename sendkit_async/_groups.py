"""Exception groups, unwrapped: what a task group that failed raises to callers of the SDK.

anyio's task groups raise an ``ExceptionGroup`` even for one failure; the
SDK's calls raise the error itself (a typed :class:`SendKitError`), never a
group, whatever ran concurrently underneath.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import builtins

    BaseExceptionGroup = builtins.BaseExceptionGroup
else:  # pragma: no cover - the builtin came in 3.11; anyio brings the backport
    from exceptiongroup import BaseExceptionGroup

__all__ = ["BaseExceptionGroup", "first_error"]


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception to raise for a task group that failed: its first, unwrapped (nested groups too)."""
    first = group.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first

"""Per-attempt hooks: how the session tells observers about each HTTP attempt, as httpx's event hooks do.

The session sends one request with retries and asks the budget before each
attempt; everything else that watches attempts (a bulk job's counts, the
in-flight limit, tracing, the client's last rate-limit headers) is a hook.
A hook wraps each attempt in a context manager: entered once the budget's
permit is granted, just before the request leaves; left when the answer
(or the failure) is in, with :class:`Attempt`'s outcome fields filled in,
or with the exception that cut the attempt short (a cancellation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

import attrs

from ._rate import RateLimit

__all__ = ["Attempt", "AttemptHook", "LastRateLimit"]


@attrs.define(eq=False)
class Attempt:
    """One HTTP attempt as hooks see it (compared and hashed by identity, so a hook may key on it).

    Attributes:
        method, path: the call.
        number: 1 for a call's first attempt, 2 for its first retry, ...
        size: the request body's bytes.
        waited: seconds the attempt waited for the rate budget's permit.
        status: the answer's status, once in; ``None`` when no answer came.
        answered: whether an answer (any status) came.
        refused: the answer was a rate limiter's refusal: a 429, or a 503 or
            403 that behaves like one (see :mod:`._throttle`).
        rate: the answer's rate-limit fields, if it had any.
        request_id: the answer's request id (redacted), if it sent one.
    """

    method: str
    path: str
    number: int
    size: int
    waited: float = 0.0
    status: int | None = None
    answered: bool = False
    refused: bool = False
    rate: RateLimit | None = None
    request_id: str | None = None


class AttemptHook(Protocol):
    """Something that watches attempts: :meth:`attempt` wraps each one."""

    def attempt(self, attempt: Attempt) -> contextlib.AbstractContextManager[None]:
        """A context manager around one attempt (see the module docstring)."""
        ...


class LastRateLimit:
    """Keeps the rate-limit fields of the latest answer that carried any (``client.rate_limit``)."""

    __slots__ = ("latest",)

    def __init__(self) -> None:
        self.latest: RateLimit | None = None

    @contextlib.contextmanager
    def attempt(self, attempt: Attempt) -> Iterator[None]:
        """Note the answer's fields, if it had any."""
        yield
        if attempt.rate is not None:
            self.latest = attempt.rate

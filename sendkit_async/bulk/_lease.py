"""Who runs a job: the holder named by a job lease, and the errors about it."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timezone
from typing import Final

import attrs
import orjson

from sendkit_async._errors import ValidationError

__all__ = ["Holder", "check_job_name"]

MAX_JOB_NAME: Final = 200


@attrs.frozen
class Holder:
    """The process that holds a job: its host, its pid, when it took the job, and a secret token."""

    host: str
    pid: int
    started: datetime
    token: str = attrs.field(repr=False)

    @classmethod
    def here(cls) -> Holder:
        """This process, from now."""
        return cls(socket.gethostname(), os.getpid(), datetime.now(timezone.utc), secrets.token_hex(16))

    def encode(self) -> bytes:
        """The holder as stored beside the job (JSON)."""
        started = self.started.isoformat()
        return orjson.dumps({"host": self.host, "pid": self.pid, "started": started, "token": self.token})

    @classmethod
    def decode(cls, stored: bytes) -> Holder:
        """A holder as :meth:`encode` stored it; unreadable parts read as unknown."""
        try:
            data = orjson.loads(stored)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            data = {}
        try:
            started = datetime.fromisoformat(str(data.get("started")))
        except ValueError:
            started = datetime.fromtimestamp(0, timezone.utc)
        pid = data.get("pid")
        return cls(
            str(data.get("host", "an unknown host")),
            pid if isinstance(pid, int) else 0,
            started,
            str(data.get("token", "")),
        )

    def describe(self) -> str:
        """``host (pid N) since 2026-11-26 10:00:00 UTC``, for messages."""
        since = self.started.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.host} (pid {self.pid}) since {since}"


def check_job_name(name: object) -> None:
    """Refuse a job name that is not 1-200 printable characters without spaces or braces.

    Raises:
        ValidationError: naming what was wrong.
    """
    if not isinstance(name, str) or not name:
        raise ValidationError(f"job must be a non-empty name, got {name!r}")
    if len(name) > MAX_JOB_NAME or not name.isprintable() or any(c.isspace() for c in name):
        raise ValidationError(
            f"job must be at most {MAX_JOB_NAME} printable characters without spaces, got {name!r}"
        )
    if "{" in name or "}" in name:
        # A brace would end the key's hash tag: a job's keys would spread over cluster slots.
        raise ValidationError(f"job must not hold braces ({{ or }}), got {name!r}")

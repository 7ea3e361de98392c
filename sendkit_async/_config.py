"""Client settings: frozen attrs classes and every default in one place."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

import attrs
from yarl import URL

from ._errors import ConfigurationError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_IDS_PER_REQUEST",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "ClientConfig",
    "RetryPolicy",
    "Timeout",
]

DEFAULT_BASE_URL: Final = "https://api.sendkit.ai"
DEFAULT_MAX_RETRIES: Final = 2
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
# A 10,000-entry import is about 1 MB of JSON: seconds even on a slow uplink.
# With the default retries a silent server holds a call at most
# 3 x 60 s + 1.5 s of backoff (see Timeout).
DEFAULT_TOTAL_TIMEOUT: Final = 60.0
# A whole call (its attempts and the backoff between them) takes at most this long.
DEFAULT_CALL_TIMEOUT: Final = 60.0
DEFAULT_BACKOFF_BASE: Final = 0.5
DEFAULT_BACKOFF_CAP: Final = 8.0
DEFAULT_MAX_RETRY_WAIT: Final = 60.0
# What a server says about time is believed up to an hour: a reset, a Retry-After or a policy
# window past it (10**30, an epoch in the year 5138) is taken as unknown, not obeyed.
MAX_SERVER_WAIT: Final = 3600.0
# The longest an interactive call waits for its slots in the rate budget.
DEFAULT_MAX_QUEUE_WAIT: Final = 60.0
# The connection pool's cap when the client owns its aiohttp session.
DEFAULT_CONNECTION_LIMIT: Final = 100
# The largest answer body read (and, compressed, the most it may inflate to): a page of the
# largest list is about 30 KB and an import's answer a few hundred bytes; HTML error pages fit
# too. Past it the connection is dropped and the attempt fails as if no answer came.
DEFAULT_MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
MIN_ANSWER_BYTES: Final = 1024
# The longest status line or header field read; an answer past it is malformed.
MAX_ANSWER_LINE: Final = 16 * 1024
# Requests a bulk helper keeps in flight ("auto": about rate x latency, see
# _flow.py), the most "auto" ever allows (memory is about one batch body per
# request in flight: ~600 KB for 10,000 typical addresses, so 64 hold ~40 MB),
# and ids an inbox selection sends per request.
DEFAULT_CONCURRENCY: Final = "auto"
DEFAULT_MAX_CONCURRENCY: Final = 64
# The most requests any helper may keep in flight (a fixed concurrency=N, or max_concurrency):
# far above what one key's rate needs, and a bound on the tasks a typo could start.
MAX_CONCURRENCY: Final = 1_000
DEFAULT_IDS_PER_REQUEST: Final = 1_000
# A bulk job's retries per request: more than a single call's, as a job of
# hours should ride out a rough minute; 429s are paced by the budget, and a
# batch refused for two minutes in a row gives up (a key refused everything).
DEFAULT_BULK_RETRIES: Final = 5
DEFAULT_BULK_RATE_LIMIT_RETRIES: Final = 30
DEFAULT_BULK_MAX_REFUSED_FOR: Final = 120.0
# Requests a job may spend splitting refused batches down to their bad entries.
DEFAULT_MAX_SPLIT_REQUESTS: Final = 256
# A typical 10,000-entry body is about 600 KB; this bound only bites for
# unusually long addresses, keeping bodies under common 5 MB proxy limits.
DEFAULT_MAX_BATCH_BYTES: Final = 2 * 1024 * 1024

# A job's lease in a checkpoint store lives this long, renewed every third of
# it; a store's calls time out well inside it. A completed job's records stay
# a week (a rerun then sends nothing); a job that never completes, a month.
DEFAULT_LEASE_TTL: Final = 5.0
MIN_LEASE_TTL: Final = 0.3
DEFAULT_COMPLETED_TTL: Final = timedelta(days=7)
DEFAULT_IDLE_TTL: Final = timedelta(days=30)
# The longest one call to a shared budget in Redis may take before the
# process paces alone (a budget call sits in front of every request).
DEFAULT_BUDGET_REDIS_TIMEOUT: Final = 0.25

# The Redis URL forms a budget or a checkpoint store takes (see _redis_url.py).
REDIS_URL_SCHEMES: Final = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
)

ENV_API_KEY: Final = "SENDKIT_API_KEY"
ENV_BASE_URL: Final = "SENDKIT_BASE_URL"
ENV_WORKSPACE_ID: Final = "SENDKIT_WORKSPACE_ID"

PLATFORM_KEY_PREFIX: Final = "sk_user_"
WORKSPACE_KEY_PREFIX: Final = "sk_"


def _seconds(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"timeout {attribute.name} must be a number of seconds, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigurationError(
            f"timeout {attribute.name} must be a positive, finite number of seconds, got {value!r} "
            "(use None to switch a limit off)"
        )


def _count(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None and attribute.name == "max_rate_limit_retries":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{attribute.name} must be a whole number, 0 or more, got {value!r}")


def _wait(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value >= 0 and math.isfinite(value))
    ):
        raise ConfigurationError(
            f"{attribute.name} must be a finite number of seconds, 0 or more, got {value!r}"
        )


def _optional_wait(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _wait(instance, attribute, value)


@attrs.frozen
class Timeout:
    """Time limits in seconds (``None`` switches one off).

    Under the defaults a server that never answers, or trickles its answer a
    byte at a time, holds a call for at most ``call`` (60 s): each attempt
    gets what is left of it, and no retry starts once it is spent. A 429 adds
    the rate budget's pause, which ``max_queue_wait`` bounds on its own.

    Attributes:
        total: one attempt, from connecting to the last byte of the answer.
        connect: acquiring a pooled connection and opening it.
        call: the whole call: every attempt and the backoff between them (not
            the wait for the rate budget). ``None``: each attempt is bounded
            by ``total`` alone (bulk jobs, whose retries ride out a rough minute).

    Raises:
        ConfigurationError: zero, negative, NaN or infinite seconds, or not a number.
    """

    total: float | None = attrs.field(default=DEFAULT_TOTAL_TIMEOUT, validator=_seconds)
    connect: float | None = attrs.field(default=DEFAULT_CONNECT_TIMEOUT, validator=_seconds)
    call: float | None = attrs.field(default=DEFAULT_CALL_TIMEOUT, validator=_seconds)

    def within(self, seconds: float) -> Timeout:
        """These limits for an attempt that has at most ``seconds`` left (never less than a millisecond)."""
        left = max(seconds, 0.001)
        return attrs.evolve(
            self,
            total=left if self.total is None else min(self.total, left),
            connect=None if self.connect is None else min(self.connect, left),
        )


@attrs.frozen
class RetryPolicy:
    """How the session retries a failed attempt.

    Attributes:
        max_retries: retries after the first attempt for transient failures
            (408, 409, 5xx, dropped connections, timeouts).
        max_rate_limit_retries: retries for 429 answers; ``None`` means the
            same as ``max_retries``. The bulk engine raises it: a paced job
            should wait out a 429 rather than lose a batch.
        backoff_base: first backoff ceiling; it doubles every attempt.
        backoff_cap: the largest backoff ceiling (full jitter draws below it).
        max_retry_wait: the longest ``Retry-After`` the session will honour;
            a longer one raises instead of hanging the caller.
        max_queue_wait: the longest one call waits for its slots in the rate
            budget, all attempts together (the budget's pace, and its pause
            after a 429): past it the call raises :class:`BudgetTimeoutError`.
            ``None`` waits as long as it takes (bulk jobs, by default).
        max_refused_for: a call answered nothing but 429s for this long in a
            row gives up (``None``: only ``max_rate_limit_retries`` bounds
            it); so a server that refuses everything, forever, ends a bulk
            job's batches in about this long (120 s for bulk jobs).
    """

    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, validator=_count)
    max_rate_limit_retries: int | None = attrs.field(default=None, validator=_count)
    backoff_base: float = attrs.field(default=DEFAULT_BACKOFF_BASE, validator=_wait)
    backoff_cap: float = attrs.field(default=DEFAULT_BACKOFF_CAP, validator=_wait)
    max_retry_wait: float = attrs.field(default=DEFAULT_MAX_RETRY_WAIT, validator=_wait)
    max_queue_wait: float | None = attrs.field(default=DEFAULT_MAX_QUEUE_WAIT, validator=_optional_wait)
    max_refused_for: float | None = attrs.field(default=None, validator=_optional_wait)

    @property
    def rate_limit_retries(self) -> int:
        """The 429 budget actually in force."""
        if self.max_rate_limit_retries is None:
            return self.max_retries
        return self.max_rate_limit_retries


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _checked_key(key: object) -> str:
    """The key, stripped, or a ConfigurationError that never quotes it."""
    if key is not None and not isinstance(key, str):
        raise ConfigurationError(f"api_key must be a string, got {type(key).__name__}")
    if not key or not key.strip():
        raise ConfigurationError(f"no API key: pass api_key=... or set {ENV_API_KEY}")
    key = key.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in key):  # noqa: PLR2004 - control characters
        raise ConfigurationError(
            "the API key holds whitespace or a control character (a stray newline from a file?)"
        )
    if not key.startswith(WORKSPACE_KEY_PREFIX):
        raise ConfigurationError(
            "the API key does not look like a SendKit key "
            f"(expected {PLATFORM_KEY_PREFIX}... or {WORKSPACE_KEY_PREFIX}...)",
        )
    return key


@attrs.frozen
class ClientConfig:
    """Validated settings of one client. The API key never appears in its repr."""

    api_key: str = attrs.field(repr=False)
    base_url: URL
    workspace_id: str | None
    timeout: Timeout = Timeout()
    retry: RetryPolicy = RetryPolicy()
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def key_id(self) -> str:
        """A fingerprint of the key and workspace to name shared state by (the key cannot be read back)."""
        material = f"{self.api_key}\0{self.workspace_id or ''}".encode()
        return hashlib.blake2b(material, digest_size=16, person=b"sendkit-budget").hexdigest()

    @property
    def is_platform_key(self) -> bool:
        """Whether the key spans workspaces (``sk_user_...``)."""
        return self.api_key.startswith(PLATFORM_KEY_PREFIX)

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | None,
        base_url: str | URL | None,
        workspace_id: str | None,
        timeout: Timeout | float | None,
        retry: RetryPolicy,
        headers: Mapping[str, str] | None,
        allow_insecure_http: bool,
        environ: Mapping[str, str] | None = None,
    ) -> ClientConfig:
        """Merge arguments with the environment and check them.

        Raises:
            ConfigurationError: no key, a platform key without a workspace id,
                a workspace key with one, a malformed base URL, or plain HTTP
                to a non-loopback host without ``allow_insecure_http``.
        """
        env = os.environ if environ is None else environ
        key = _checked_key(api_key if api_key is not None else env.get(ENV_API_KEY))
        workspace = workspace_id if workspace_id is not None else env.get(ENV_WORKSPACE_ID)
        workspace = workspace or None
        if key.startswith(PLATFORM_KEY_PREFIX) and workspace is None:
            raise ConfigurationError(
                "a platform key (sk_user_...) needs a workspace: "
                f"pass workspace_id=... or set {ENV_WORKSPACE_ID}",
            )
        if not key.startswith(PLATFORM_KEY_PREFIX) and workspace is not None:
            raise ConfigurationError(
                "a workspace key (sk_...) is bound to its workspace and must not "
                f"send a workspace id: drop workspace_id / {ENV_WORKSPACE_ID}",
            )
        given = base_url if base_url is not None else env.get(ENV_BASE_URL, DEFAULT_BASE_URL)
        if not isinstance(given, (str, URL)):
            raise ConfigurationError(f"base URL must be a string, got {type(given).__name__}")
        try:
            url = URL(str(given))
            usable = url.scheme in {"http", "https"} and bool(url.host)
        except ValueError:  # yarl's word for what is not a URL at all (a port that is not a number)
            usable = False
        if not usable:
            raise ConfigurationError(f"base URL must be an http(s) URL, got {str(given)!r:.100}")
        if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
            raise ConfigurationError(
                f"refusing plain http:// to {url.host}: the API key would cross the network "
                "in clear; use https:// or pass allow_insecure_http=True",
            )
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            timeout = Timeout(total=float(timeout))
        elif timeout is not None and not isinstance(timeout, Timeout):
            raise ConfigurationError(f"timeout must be seconds or a Timeout, got {timeout!r}")
        return cls(
            api_key=key,
            base_url=url,
            workspace_id=workspace,
            timeout=timeout if timeout is not None else Timeout(),
            retry=retry,
            headers=dict(headers or {}),
        )

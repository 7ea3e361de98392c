"""Settings shared by every command, the client they open, and the runner that maps errors to exit codes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import click
from rich.console import Console
from rich.markup import escape

from sendkit_async import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    SendKit,
    SendKitError,
    ValidationError,
)
from sendkit_async.budget import REDIS_URL_SCHEMES
from sendkit_async.bulk import DEFAULT_CONCURRENCY, Concurrency

from ._input import UnreadableInputError
from ._output import describe_error

__all__ = [
    "CONFIGURATION_ERRORS",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Settings",
    "concurrency_option",
    "err",
    "open_client",
    "out",
    "run",
]

EXIT_OK: Final = 0
EXIT_INCOMPLETE: Final = 1
EXIT_USAGE: Final = 2
# A key the server refuses is the caller's configuration, like a missing one: exit 2.
CONFIGURATION_ERRORS: Final = (ConfigurationError, AuthenticationError, PermissionDeniedError)
EXIT_INTERRUPTED: Final = 130
T = TypeVar("T")


def _concurrency(_ctx: click.Context, param: click.Parameter, value: str) -> Concurrency:
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise click.BadParameter(f"{value!r} is not 'auto' or a whole number of at least 1", param=param)


concurrency_option = click.option(
    "--concurrency",
    metavar="auto|N",
    default=DEFAULT_CONCURRENCY,
    callback=_concurrency,
    show_default=True,
    help="requests in flight: auto (about rate x latency, less when the server slows) or a fixed number",
)


class OutputPath(click.ParamType):  # type: ignore[type-arg,unused-ignore] # generic from click 8.3 on
    """A file the command will write: checked before anything is sent, so a typo costs no import.

    Refused: a folder, a path whose folder does not exist or cannot be
    written, an existing file that cannot be written, and a name whose
    extension says a format the command does not write (``out.xlsx`` would
    be CSV inside): ``suffixes`` are the ones it does (compressed with .gz
    where ``gzip``), and a name without one is taken as the first.
    """

    name = "file"

    def __init__(self, suffixes: tuple[str, ...] = (".csv",), *, gzip: bool = False) -> None:
        self.suffixes = suffixes
        self.gzip = gzip

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        path = Path(os.fspath(value))
        named = path.with_suffix("") if self.gzip and path.suffix.lower() == ".gz" else path
        if named.suffix and named.suffix.lower() not in self.suffixes:
            written = ", ".join(self.suffixes) + (" (or any of them .gz)" if self.gzip else "")
            self.fail(f"cannot write {named.suffix} files; name it {written}", param, ctx)
        folder = path.parent
        if path.is_dir():
            self.fail(f"{value} is a folder; give a file name in it", param, ctx)
        if not folder.is_dir():
            self.fail(f"cannot write {value}: there is no folder {str(folder)!r}", param, ctx)
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            self.fail(f"cannot write {value}: permission denied", param, ctx)
        return str(value)


@attrs.define
class Settings:
    """The root options, shared by every command."""

    api_key_file: Path | None
    base_url: str | None
    workspace_id: str | None
    fake: bool
    debug: bool
    redis_url: str | None = None
    fake_options: dict[str, Any] = attrs.Factory(dict)

    @property
    def use_fake(self) -> bool:
        """``--fake``, or ``SENDKIT_BASE_URL=fake``."""
        return self.fake or (self.base_url or os.environ.get("SENDKIT_BASE_URL", "")).lower() == "fake"


# soft_wrap: a message is one line, never broken mid-sentence at 80 columns
# when stderr is a pipe or a file (a terminal wraps it at its own width).
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


@asynccontextmanager
async def open_client(settings: Settings, **options: Any) -> AsyncIterator[SendKit]:
    """A client for the real API, or for an in-process fake server with ``--fake``.

    With ``--redis`` its rate budget is the one shared in Redis by every
    process on the same key.
    """
    if settings.redis_url:
        try:
            from sendkit_async.budget import RedisBudget  # noqa: PLC0415 - the optional extra
        except ImportError:
            raise ConfigurationError(
                "--redis (SENDKIT_REDIS_URL) needs the redis extra: pip install 'sendkit-async[redis]'"
            ) from None
        if not settings.redis_url.lower().startswith(REDIS_URL_SCHEMES):
            raise ConfigurationError(
                "--redis (SENDKIT_REDIS_URL) takes a redis://, rediss://, unix://, "
                "redis+cluster://host:port[,host:port]/ or redis+sentinel://host:port[,host:port]/service URL"
            )
        async with (
            RedisBudget.from_url(settings.redis_url) as budget,
            _client(settings, rate_budget=budget, **options) as client,
        ):
            yield client
        return
    async with _client(settings, **options) as client:
        yield client


@asynccontextmanager
async def _client(settings: Settings, **options: Any) -> AsyncIterator[SendKit]:
    if settings.use_fake:
        from sendkit_async.testing import FakeSendKit  # noqa: PLC0415 - only --fake needs the fake server

        async with FakeSendKit(**settings.fake_options) as fake, fake.client(**options) as client:
            yield client
        return
    key = None
    if settings.api_key_file is not None:
        try:
            key = settings.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read --api-key-file: {exc.strerror}") from None
    async with SendKit(
        api_key=key, base_url=settings.base_url, workspace_id=settings.workspace_id, **options
    ) as client:
        yield client


def run(settings: Settings, work: Callable[[], Awaitable[int]]) -> None:
    """Run ``work`` on a fresh event loop and exit with its code; map errors to codes.

    Ctrl-C cancels the work (which stops cleanly, closing the checkpoint) and exits 130.
    """
    if settings.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    else:
        # The library's retry warnings are for --debug: the progress bar counts retries, and
        # an error is said once, at the end, in one line.
        logging.getLogger("sendkit_async").addHandler(logging.NullHandler())

    async def main() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None  # noqa: S101 - inside a running task by construction
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        try:
            return await work()
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    try:
        code = asyncio.run(main())
    except asyncio.CancelledError:
        err.print("[yellow]stopped[/] (Ctrl-C); run the same command again to resume from --checkpoint")
        code = EXIT_INTERRUPTED
    except (SendKitError, UnreadableInputError) as exc:
        if settings.debug:
            err.print_exception()
        err.print(f"[red]error:[/] {escape(describe_error(exc))}")
        usage = isinstance(exc, (*CONFIGURATION_ERRORS, ValidationError, UnreadableInputError))
        code = EXIT_USAGE if usage else EXIT_INCOMPLETE
    sys.exit(code)

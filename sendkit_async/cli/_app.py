"""The ``sendkit-async`` command: DNC import, listing and export, inbox calls, the fake server."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sendkit_async._errors import (
    ConfigurationError,
    SendKitError,
    ValidationError,
)
from sendkit_async.bulk import DEFAULT_CONCURRENCY, CheckpointMismatchError, ImportAbortedError, ImportReport
from sendkit_async.bulk._report import ReportBuilder
from sendkit_async.client import SendKit
from sendkit_async.testing import FakeSendKit

from ._input import InputFile, UnreadableInputError
from ._output import ImportDisplay, describe_error, report_json, summary_table, write_rejects

__all__ = ["cli"]

EXIT_OK: Final = 0
EXIT_INCOMPLETE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
T = TypeVar("T")


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


err = Console(stderr=True)
out = Console()


@asynccontextmanager
async def open_client(settings: Settings, **options: Any) -> AsyncIterator[SendKit]:
    """A client for the real API, or for an in-process fake server with ``--fake``.

    With ``--redis`` its rate budget is the one shared in Redis by every
    process on the same key.
    """
    if settings.redis_url:
        try:
            from sendkit_async._budget._redis import RedisBudget  # noqa: PLC0415 - the optional extra
        except ImportError:
            raise ConfigurationError(
                "--redis (SENDKIT_REDIS_URL) needs the redis extra: pip install 'sendkit-async[redis]'"
            ) from None
        if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError("--redis (SENDKIT_REDIS_URL) takes a redis:// or rediss:// URL")
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
        err.print(f"[red]error:[/] {describe_error(exc)}")
        usage = isinstance(exc, (ConfigurationError, ValidationError, UnreadableInputError))
        code = EXIT_USAGE if usage else EXIT_INCOMPLETE
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--api-key-file", type=click.Path(dir_okay=False, path_type=Path), help="read the API key from this file"
)
@click.option("--base-url", help="API base URL (default: SENDKIT_BASE_URL or https://api.sendkit.ai)")
@click.option("--workspace-id", help="workspace, with a platform key (default: SENDKIT_WORKSPACE_ID)")
@click.option("--fake", is_flag=True, help="run against an in-process fake SendKit server")
@click.option("--debug", is_flag=True, help="tracebacks and request logs (the key is never logged)")
@click.option(
    "--redis",
    "redis_url",
    envvar="SENDKIT_REDIS_URL",
    metavar="URL",
    help="share one rate budget through this Redis with every process on the key (or SENDKIT_REDIS_URL)",
)
@click.version_option(package_name="sendkit-async")
@click.pass_context
def cli(
    ctx: click.Context,
    api_key_file: Path | None,
    base_url: str | None,
    workspace_id: str | None,
    fake: bool,
    debug: bool,
    redis_url: str | None,
) -> None:
    """SendKit from the command line: DNC imports, listings and inbox operations.

    The key comes from SENDKIT_API_KEY or --api-key-file and is never printed.
    """
    ctx.obj = Settings(api_key_file, base_url, workspace_id, fake, debug, redis_url)


# -- dnc ---------------------------------------------------------------------


@cli.group()
def dnc() -> None:
    """The Do Not Contact list."""


@dnc.command("import")
@click.argument("file")
@click.option("--concurrency", type=click.IntRange(1, 64), default=DEFAULT_CONCURRENCY, show_default=True)
@click.option("--max-rate", type=click.FloatRange(min=0, min_open=True), help="requests per second at most")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=10_000, show_default=True)
@click.option("--reason", default=None, help="reason for rows without one (default: import)")
@click.option("--no-dedupe", is_flag=True, help="send repeats of an address instead of dropping them")
@click.option(
    "--checkpoint", type=click.Path(dir_okay=False), help="record landed batches here; rerun to resume"
)
@click.option(
    "--rejects", type=click.Path(dir_okay=False), help="write rejected and failed entries here as CSV"
)
@click.option("--dry-run", is_flag=True, help="validate and count; send nothing")
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON object, no progress bar")
@click.option("--column", help="the address column of a CSV, by name or 1-based number (default: found)")
@click.option("--delimiter", help="the CSV delimiter (default: sniffed among , ; tab |)")
@click.option("--no-header", is_flag=True, help="the CSV's first row is data, not column names")
@click.pass_obj
def dnc_import(
    settings: Settings,
    file: str,
    concurrency: int,
    max_rate: float | None,
    batch_size: int,
    reason: str | None,
    no_dedupe: bool,
    checkpoint: str | None,
    rejects: str | None,
    dry_run: bool,
    as_json: bool,
    column: str | None,
    delimiter: str | None,
    no_header: bool,
) -> None:
    """Import FILE (CSV with an email column, one address per line, or JSON Lines; - for stdin; .gz ok).

    The CSV delimiter is sniffed; the address column is found by its name
    (email, e-mail, email address, mail, ...) or its content; lines starting
    with # are comments. A reason column must hold reasons; --reason
    replaces it for every row.

    Exit codes: 0 all imported or already listed; 1 some rejected or failed;
    2 usage or configuration error; 130 stopped by Ctrl-C (rerun to resume).
    """
    delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter or "", delimiter)
    if delimiter is not None and len(delimiter) != 1:
        raise click.BadParameter("one character, or 'tab'", param_hint="--delimiter")
    source = InputFile(
        file,
        column=column,
        delimiter=delimiter,
        header=False if no_header else None,
        reason_given=reason is not None,
    )
    run(
        settings,
        lambda: import_file(
            settings,
            source,
            concurrency=concurrency,
            max_rate=max_rate,
            batch_size=batch_size,
            reason=reason,
            dedupe=not no_dedupe,
            checkpoint=checkpoint,
            rejects=rejects,
            dry_run=dry_run,
            as_json=as_json,
        ),
    )


async def import_file(
    settings: Settings,
    source: InputFile,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_rate: float | None = None,
    batch_size: int = 10_000,
    reason: str | None = None,
    dedupe: bool = True,
    checkpoint: str | None = None,
    rejects: str | None = None,
    dry_run: bool = False,
    as_json: bool = False,
    rejects_expected: bool = False,
) -> int:
    """The import job behind ``dnc import`` and ``demo``; returns the exit code."""
    await source.open()  # an unreadable file is a usage error, before any request
    async with open_client(settings) as client:
        if dry_run:
            report: Any = await client.dnc.validate_bulk(
                source.entries(), batch_size=batch_size, dedupe=dedupe, reason=reason
            )
            problems = len(report.rejected)
        else:
            display = ImportDisplay(err, source, enabled=not as_json and err.is_terminal)
            # The CLI folds the batches itself, so that an interrupted job can
            # still print its account and write the rejects seen so far.
            builder = ReportBuilder()
            started = time.monotonic()
            try:
                with display.running():
                    async with contextlib.aclosing(
                        client.dnc.iter_import(
                            source.entries(),
                            batch_size=batch_size,
                            concurrency=concurrency,
                            max_rate=max_rate,
                            dedupe=dedupe,
                            reason=reason,
                            checkpoint=checkpoint,
                        )
                    ) as results:
                        async for result in results:
                            builder.add(result)
                            display.update(builder.progress(time.monotonic() - started))
            except ImportAbortedError as exc:
                stopped = attrs.evolve(builder.report(time.monotonic() - started), stopped_at=builder.read)
                finish(stopped, source, rejects=rejects, as_json=as_json, title="import stopped", error=exc)
                # A file that stops making sense part-way is a usage problem, like one that never did.
                usage = isinstance(exc.__cause__, (UnreadableInputError, CheckpointMismatchError))
                return EXIT_USAGE if usage else EXIT_INCOMPLETE
            except asyncio.CancelledError:
                partial = builder.report(time.monotonic() - started)
                finish(
                    partial,
                    source,
                    rejects=rejects,
                    as_json=as_json,
                    title="import interrupted",
                    interrupted=True,
                )
                raise
            report = builder.report(time.monotonic() - started)
            problems = len(report.rejected) + len(report.failed)
            if report.read == 0:
                err.print(f"[yellow]warning:[/] {source.path} holds no entries; nothing was imported")
    finish(report, source, rejects=rejects, as_json=as_json, title="dry run" if dry_run else "import summary")
    if problems and not (rejects_expected and isinstance(report, ImportReport) and not report.failed):
        return EXIT_INCOMPLETE
    return EXIT_OK


def finish(
    report: Any,
    source: InputFile,
    *,
    rejects: str | None,
    as_json: bool,
    title: str,
    error: BaseException | None = None,
    interrupted: bool = False,
) -> None:
    """Print the summary (or JSON), write the rejects file, and the stop reason if any.

    An interrupted job's account covers the batches that finished; the same
    command with the same ``--checkpoint`` resumes the rest.
    """
    if rejects is not None:
        count = write_rejects(rejects, report, source)
        if not as_json:
            err.print(f"wrote {count:,} rejected or failed entries to {rejects}")
    if as_json:
        extra: dict[str, Any] = {"error": describe_error(error)} if error is not None else {}
        if interrupted:
            extra["interrupted"] = True
        sys.stdout.buffer.write(report_json(report, source, **extra) + b"\n")
        sys.stdout.flush()
    else:
        out.print(summary_table(report, title=title))
    if error is not None:
        err.print(f"[red]error:[/] {describe_error(error)}")


@dnc.command("list")
@click.option("--type", "type_", type=click.Choice(["email", "domain"]), help="only this entry type")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "jsonl"]), default="table", show_default=True
)
@click.option("--limit", type=click.IntRange(min=1), help="stop after N entries")
@click.pass_obj
def dnc_list(settings: Settings, type_: str | None, fmt: str, limit: int | None) -> None:
    """List DNC entries."""

    async def work() -> int:
        rows = []  # only the table is held; csv and jsonl stream
        count = 0
        async with (
            open_client(settings) as client,
            contextlib.aclosing(client.dnc.list(type=type_)) as entries,
        ):
            async for entry in entries:
                count += 1
                if fmt == "table":
                    rows.append(entry)
                else:
                    _emit(sys.stdout, fmt, entry, header=count == 1)
                if limit is not None and count >= limit:
                    break
        if fmt == "table":
            table = Table("email", "type", "reason", "created")
            for entry in rows:
                created = entry.created_at.isoformat() if entry.created_at else ""
                table.add_row(entry.email, entry.entry_type, entry.reason, created)
            out.print(table)
        return EXIT_OK

    run(settings, work)


_FIELDS: Final = ("email", "type", "reason", "created_at", "id")


def _emit(handle: Any, fmt: str, entry: Any, *, header: bool) -> None:
    values = (
        entry.email,
        entry.entry_type,
        entry.reason,
        entry.created_at.isoformat() if entry.created_at else "",
        entry.id,
    )
    if fmt == "jsonl":
        handle.write(orjson.dumps(dict(zip(_FIELDS, values, strict=True))).decode() + "\n")
        return
    if fmt == "txt":
        handle.write(entry.email + "\n")
        return
    writer = csv.writer(handle)
    if header:
        writer.writerow(_FIELDS)
    writer.writerow(values)


@dnc.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl", "txt"]), help="default: from the file name"
)
@click.option("--type", "type_", type=click.Choice(["email", "domain"]), help="only this entry type")
@click.pass_obj
def dnc_export(settings: Settings, file: str, fmt: str | None, type_: str | None) -> None:
    """Write every DNC entry to FILE, streamed page by page, with progress.

    The format follows the name: .jsonl or .ndjson for JSON Lines, .txt for one
    address per line, anything else CSV; .gz compresses any of them.
    """
    plain = file.removesuffix(".gz")
    chosen = fmt or (
        "jsonl" if plain.endswith((".jsonl", ".ndjson")) else "txt" if plain.endswith(".txt") else "csv"
    )

    async def work() -> int:
        count = 0
        opener: Any = gzip.open if file.endswith(".gz") else open
        columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        async with open_client(settings) as client:
            with (
                opener(file, "wt", newline="", encoding="utf-8") as handle,
                Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress,
            ):
                task = progress.add_task("export", total=None)
                async for page in client.dnc.pages(type=type_):
                    if progress.tasks[task].total is None and page.pagination.total is not None:
                        progress.update(task, total=page.pagination.total)
                    for entry in page.items:
                        _emit(handle, chosen, entry, header=count == 0)
                        count += 1
                    progress.update(task, completed=count)
        err.print(f"exported {count:,} entries to {file}")
        return EXIT_OK

    run(settings, work)


# -- inbox -------------------------------------------------------------------


@cli.group()
def inbox() -> None:
    """Conversations."""


def _read_ids(path: str | None) -> list[str] | None:
    if path is None:
        return None
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--ids-file", type=click.Path(), help="conversation ids, one per line (- for stdin)"
            ),
            click.option(
                "--all", "select_all", is_flag=True, help="every conversation (narrow with --filter)"
            ),
            click.option(
                "--exclude-file", type=click.Path(), help="with --all: ids to leave out, one per line"
            ),
            click.option(
                "--filter", "filters", multiple=True, metavar="KEY=VALUE", help="with --all: a filter"
            ),
        ]
    ):
        command = option(command)
    return command


def _selection(
    ids_file: str | None, select_all: bool, exclude_file: str | None, filters: tuple[str, ...]
) -> dict[str, Any]:
    if (ids_file is None) == (not select_all):
        raise click.UsageError("pass --ids-file FILE or --all")
    parsed: dict[str, Any] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--filter takes KEY=VALUE, got {item!r}")
        parsed[key] = _filter_value(value)
    if (filters or exclude_file) and not select_all:
        raise click.UsageError("--filter and --exclude-file go with --all")
    return {
        "conversation_ids": _read_ids(ids_file),
        "select_all": select_all,
        "filters": parsed or None,
        "exclude_ids": _read_ids(exclude_file),
    }


def _filter_value(value: str) -> Any:
    lowered = value.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    return None if lowered == "null" else value


def _selection_command(
    name: str, summary: str, call: Callable[[SendKit, dict[str, Any]], Awaitable[str]]
) -> None:
    """Add an inbox command that sends a selection (--ids-file, or --all with filters)."""

    @inbox.command(name, help=summary)
    @_selection_options
    @click.pass_obj
    def command(
        settings: Settings,
        ids_file: str | None,
        select_all: bool,
        exclude_file: str | None,
        filters: tuple[str, ...],
    ) -> None:
        selection = _selection(ids_file, select_all, exclude_file, filters)

        async def work() -> int:
            async with open_client(settings) as client:
                out.print(await call(client, selection))
            return EXIT_OK

        run(settings, work)


async def _mark_read(client: SendKit, selection: dict[str, Any]) -> str:
    result = await client.inbox.mark_read(**selection)
    return f"marked {result.modified:,} conversations read"


async def _add_to_dnc(client: SendKit, selection: dict[str, Any]) -> str:
    result = await client.inbox.add_leads_to_dnc(**selection)
    already = f"{result.skipped:,} already there ({result.total:,} in all)"
    return f"added {result.added:,} leads to the DNC list, {already}"


_selection_command("mark-read", "Mark the selected conversations' unread replies as read.", _mark_read)
_selection_command("add-to-dnc", "Put the selected conversations' leads on the DNC list.", _add_to_dnc)


@inbox.command("update")
@click.argument("conversation_id")
@click.option("--mark-read", is_flag=True, help="mark its unread replies as read")
@click.option("--ai-tag", help="set the AI tag")
@click.option("--clear-ai-tag", is_flag=True, help="remove the AI tag")
@click.option("--tag", "tags", multiple=True, help="set the custom tags (repeat for several)")
@click.pass_obj
def inbox_update(
    settings: Settings,
    conversation_id: str,
    mark_read: bool,
    ai_tag: str | None,
    clear_ai_tag: bool,
    tags: tuple[str, ...],
) -> None:
    """Update one conversation."""
    if ai_tag is not None and clear_ai_tag:
        raise click.UsageError("--ai-tag and --clear-ai-tag exclude each other")
    changes: dict[str, Any] = {}
    if mark_read:
        changes["mark_read"] = True
    if ai_tag is not None or clear_ai_tag:
        changes["ai_tag"] = ai_tag
    if tags:
        changes["tags"] = list(tags)
    if not changes:
        raise click.UsageError("nothing to update: pass --mark-read, --ai-tag, --clear-ai-tag or --tag")

    async def work() -> int:
        async with open_client(settings) as client:
            conversation = await client.inbox.update(conversation_id, **changes)
        out.print(f"{conversation.id}: ai tag {conversation.ai_tag!r}, tags {list(conversation.tags)}")
        return EXIT_OK

    run(settings, work)


# -- fake server and demo ----------------------------------------------------


@cli.command(
    "fake-server",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def fake_server(arguments: tuple[str, ...]) -> None:
    """Run the bundled fake SendKit server in the foreground (Ctrl-C stops it); --help lists its options.

    The options are those of ``python -m sendkit_async.testing``, one set for both.
    """
    from sendkit_async.testing.__main__ import main as serve  # noqa: PLC0415 - only this command needs it

    sys.exit(serve(list(arguments), prog="sendkit-async fake-server"))


DEMO_ENTRIES: Final = 200_000
INVALID_SHARE: Final = 0.01
REPEAT_SHARE: Final = 0.02
DOMAIN_SHARE: Final = 0.02


def write_sample(path: Path, count: int, *, seed: int = 7) -> None:
    """A CSV of ``count`` rows: mostly valid, about 1% invalid and 2% repeated."""
    rng = random.Random(seed)  # noqa: S311 - sample data
    reasons = ["bounce", "unsubscribe_link", "complaint", "manual", ""]
    with gzip.open(path, "wt", newline="") if path.suffix == ".gz" else path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "type", "reason", "source"])
        for i in range(count):
            roll = rng.random()
            if roll < INVALID_SHARE:
                writer.writerow(
                    [rng.choice(["not-an-email", "a@b", "x@@example.com", "@nodomain.com"]), "", "", "crm"]
                )
            elif roll < INVALID_SHARE + REPEAT_SHARE and i:
                writer.writerow([f"Lead{rng.randrange(i)}@Example.com", "email", "", "crm"])
            elif roll < INVALID_SHARE + REPEAT_SHARE + DOMAIN_SHARE:
                writer.writerow([f"blocked{i}.example.net", "domain", "manual", "crm"])
            else:
                writer.writerow([f"lead{i}@example.com", "email", rng.choice(reasons), "crm"])


@cli.command()
@click.option("--entries", type=click.IntRange(min=1), default=DEMO_ENTRIES, show_default=True)
@click.pass_obj
def demo(settings: Settings, entries: int) -> None:
    """Import a generated sample into an in-process fake server (50 ms latency, 20 requests/s)."""
    settings.fake = True
    settings.fake_options = {"latency": 0.05, "rate_limit": 20, "seed": 1}
    with tempfile.TemporaryDirectory() as folder:
        sample = Path(folder) / "sample.csv"
        write_sample(sample, entries)
        err.print(f"generated {entries:,} rows (with invalid entries and repeats) in {sample.name}")
        source = InputFile(str(sample))
        run(settings, lambda: import_file(settings, source, rejects_expected=True))

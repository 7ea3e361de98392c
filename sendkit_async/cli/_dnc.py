"""``sendkit-async dnc ...``: import, list and export the Do Not Contact list."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import gzip
import hashlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, cast

import attrs
import click
import orjson
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sendkit_async import APIConnectionError
from sendkit_async.bulk import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LEASE_TTL,
    MIN_LEASE_TTL,
    CheckpointMismatchError,
    Concurrency,
    ImportAbortedError,
    ImportOptions,
    ImportReport,
    JobLeaseHeldError,
    is_store_url,
    redis_checkpoints,
)
from sendkit_async.dnc import MAX_IMPORT_ENTRIES
from sendkit_async.models import EntryTypeOption

from ._input import InputFile, UnreadableInputError
from ._output import ImportDisplay, describe_error, report_json, summary_table, write_rejects
from ._runner import (
    CONFIGURATION_ERRORS,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_USAGE,
    OutputPath,
    Settings,
    concurrency_option,
    err,
    open_client,
    out,
    run,
)

__all__ = ["dnc", "finish", "import_file"]


@click.group()
def dnc() -> None:
    """The Do Not Contact list."""


def _codec(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return codecs.lookup(value).name
    except LookupError:
        raise click.BadParameter(f"{value!r} is not a text encoding Python knows") from None


@dnc.command("import")
@click.argument("file")
@concurrency_option
@click.option("--max-rate", type=click.FloatRange(min=0, min_open=True), help="requests per second at most")
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_IMPORT_ENTRIES),
    default=MAX_IMPORT_ENTRIES,
    show_default=True,
    help="entries per request (the API takes at most 10,000)",
)
@click.option("--reason", default=None, help="reason for rows without one (default: import)")
@click.option(
    "--type",
    "entry_type",
    type=click.Choice(["email", "domain", "auto"]),
    help="what rows without a type column are: addresses, whole domains, or auto (@ or not)  "
    "[default: from the column's name; auto for a bare list]",
)
@click.option("--no-dedupe", is_flag=True, help="send repeats of an address instead of dropping them")
@click.option(
    "--checkpoint",
    metavar="FILE|URL",
    help="record landed batches in this file, or in Redis (redis://HOST:PORT/DB); rerun to resume",
)
@click.option("--job", help="the job's name in a Redis checkpoint (default: from the input's path and size)")
@click.option(
    "--lease-wait",
    type=click.FloatRange(min=0),
    default=0,
    help="seconds to wait for another run of the same job to end  [default: refuse at once]",
)
@click.option(
    "--lease-ttl",
    type=click.FloatRange(min=MIN_LEASE_TTL, min_open=True),
    default=DEFAULT_LEASE_TTL,
    show_default=True,
    help="seconds a Redis job lease outlives a run that died",
)
@click.option("--rejects", type=OutputPath(), help="write rejected and failed entries here as CSV")
@click.option("--dry-run", is_flag=True, help="validate and count; send nothing")
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON object, no progress bar")
@click.option("--column", help="the address column of a CSV, by name or 1-based number (default: found)")
@click.option("--delimiter", help="the CSV delimiter (default: sniffed among , ; tab |)")
@click.option("--no-header", is_flag=True, help="the CSV's first row is data, not column names")
@click.option(
    "--encoding",
    callback=_codec,
    help="the text encoding, e.g. utf-16-le or cp1252  [default: from its byte-order mark, else UTF-8]",
)
@click.pass_obj
def dnc_import(
    settings: Settings,
    file: str,
    concurrency: Concurrency,
    max_rate: float | None,
    batch_size: int,
    reason: str | None,
    entry_type: str | None,
    no_dedupe: bool,
    checkpoint: str | None,
    job: str | None,
    lease_wait: float,
    lease_ttl: float,
    rejects: str | None,
    dry_run: bool,
    as_json: bool,
    column: str | None,
    delimiter: str | None,
    no_header: bool,
    encoding: str | None,
) -> None:
    """Import FILE (CSV with an email column, one address per line, or JSON Lines; - for stdin; .gz ok).

    The CSV delimiter is sniffed; the address column is found by its name
    (email, e-mail, email address, mail, ...) or its content; lines starting
    with # are comments. A reason column must hold reasons; --reason
    replaces it for every row.

    Values in a column named like an address column (email, e-mail, mail)
    must be addresses: one without @ (gmail.com, or a typo like
    john.doe.example.com) is rejected rather than blocking a whole domain;
    --type domain or --type auto imports such values as domains. A column
    named domain holds domains; a bare list is auto (@ or not). A type
    column, where there is one, decides for its row.

    With --checkpoint redis://HOST:PORT/DB the job's record lives in Redis,
    under --job (default: a name from the file's path and size), so a job
    killed on one host resumes on another. While it runs, the job holds a
    lease there: a second run of the same job exits 2, naming the host
    running it (or waits --lease-wait seconds for it to end).

    Exit codes: 0 all imported or already listed; 1 some rejected or failed;
    2 usage or configuration error, or the job is running elsewhere;
    130 stopped by Ctrl-C (rerun to resume).
    """
    if job is not None and not (checkpoint and is_store_url(checkpoint)):
        raise click.UsageError("--job names a job in a Redis --checkpoint; a checkpoint file is its own job")
    if checkpoint and is_store_url(checkpoint) and job is None and file == "-":
        raise click.UsageError("--job is needed with a Redis --checkpoint when the input is standard input")
    delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter or "", delimiter)
    if delimiter is not None and len(delimiter) != 1:
        raise click.BadParameter("one character, or 'tab'", param_hint="--delimiter")
    source = InputFile(
        file,
        column=column,
        delimiter=delimiter,
        header=False if no_header else None,
        reason_given=reason is not None,
        type_given=entry_type is not None,
        encoding=encoding,
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
            entry_type=cast("EntryTypeOption | None", entry_type),  # one of click's choices
            dedupe=not no_dedupe,
            checkpoint=Resume(checkpoint, job, lease_wait, lease_ttl) if checkpoint else None,
            rejects=rejects,
            dry_run=dry_run,
            as_json=as_json,
        ),
    )


async def import_file(
    settings: Settings,
    source: InputFile,
    *,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    max_rate: float | None = None,
    batch_size: int = MAX_IMPORT_ENTRIES,
    reason: str | None = None,
    entry_type: EntryTypeOption | None = None,
    dedupe: bool = True,
    checkpoint: Resume | None = None,
    rejects: str | None = None,
    dry_run: bool = False,
    as_json: bool = False,
    rejects_expected: bool = False,
) -> int:
    """The import job behind ``dnc import`` and ``demo``; returns the exit code."""
    await source.open()  # an unreadable file is a usage error, before any request
    kind = entry_type or source.entry_type
    async with open_client(settings) as client:
        if dry_run:
            report: Any = await client.dnc.validate_bulk(
                source.entries(), batch_size=batch_size, dedupe=dedupe, reason=reason, type=kind
            )
            problems = len(report.rejected)
        else:
            display = ImportDisplay(err, source, enabled=not as_json and err.is_terminal)
            try:
                async with contextlib.AsyncExitStack() as stack:
                    resume = await stack.enter_async_context(_resuming(checkpoint, source))
                    stack.enter_context(display.running())
                    options = ImportOptions(
                        batch_size=batch_size,
                        concurrency=concurrency,
                        max_rate=max_rate,
                        dedupe=dedupe,
                        reason=reason,
                        type=kind,
                        **resume,
                    )
                    report = await client.dnc.import_bulk(
                        source.entries(), options, on_progress=display.update
                    )
            except ImportAbortedError as exc:
                stopped = exc.report
                assert stopped is not None  # noqa: S101 - import_bulk always attaches its report
                if (
                    isinstance(exc.__cause__, STOPS_BEFORE_ANYTHING)
                    and not stopped.imported + stopped.skipped
                ):
                    # A bad key or a dead server, before anything landed: one line says why, no table.
                    if rejects is not None:
                        write_rejects(rejects, stopped, source)
                    raise exc.__cause__ from None
                finish(stopped, source, rejects=rejects, as_json=as_json, title="import stopped", error=exc)
                # A file that stops making sense part-way is a usage problem, like one that never did.
                usage = isinstance(
                    exc.__cause__,
                    (UnreadableInputError, CheckpointMismatchError, JobLeaseHeldError, *CONFIGURATION_ERRORS),
                )
                return EXIT_USAGE if usage else EXIT_INCOMPLETE
            except asyncio.CancelledError as exc:
                # import_bulk attaches what landed before the interruption.
                partial = getattr(exc, "report", None)
                if partial is not None:
                    finish(
                        partial,
                        source,
                        rejects=rejects,
                        as_json=as_json,
                        title="import interrupted",
                        interrupted=True,
                    )
                raise
            problems = len(report.rejected) + len(report.failed)
            if report.read == 0:
                err.print(f"[yellow]warning:[/] {escape(source.path)} holds no entries; nothing was imported")
    finish(report, source, rejects=rejects, as_json=as_json, title="dry run" if dry_run else "import summary")
    if problems and not (rejects_expected and isinstance(report, ImportReport) and not report.failed):
        return EXIT_INCOMPLETE
    return EXIT_OK


@attrs.frozen
class Resume:
    """``--checkpoint`` and its job options: a file, or a job in a Redis store."""

    where: str
    job: str | None = None
    lease_wait: float = 0.0
    lease_ttl: float = DEFAULT_LEASE_TTL


@contextlib.asynccontextmanager
async def _resuming(resume: Resume | None, source: InputFile) -> AsyncIterator[dict[str, Any]]:
    """The ``checkpoint``/``job``/``lease_wait`` arguments ``--checkpoint`` asks for, with any store open."""
    if resume is None:
        yield {}
        return
    if not is_store_url(resume.where):  # dnc_import refused --job with a file
        yield {"checkpoint": resume.where, "lease_wait": resume.lease_wait}
        return
    job = resume.job or default_job_name(source.path)
    async with redis_checkpoints(resume.where, lease_ttl=resume.lease_ttl) as store:
        yield {"checkpoint": store, "job": job, "lease_wait": resume.lease_wait}


def default_job_name(path: str) -> str:
    """A job name for an input file: its name, its size and a digest of its full path.

    The same file, named by any relative or absolute path from any working
    directory, gets the same name; so does the same file at the same path on
    another host.
    """
    resolved = Path(path).resolve()
    digest = hashlib.blake2b(str(resolved).encode(), digest_size=4).hexdigest()
    stem = re.sub(r"[^\w.-]+", "_", resolved.name)[:100]
    return f"{stem}-{resolved.stat().st_size}-{digest}"


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
            err.print(f"wrote {count:,} rejected or failed entries to {escape(rejects)}")
    if as_json:
        extra: dict[str, Any] = {"error": describe_error(error)} if error is not None else {}
        if interrupted:
            extra["interrupted"] = True
        sys.stdout.buffer.write(report_json(report, source, **extra) + b"\n")
        sys.stdout.flush()
    else:
        out.print(summary_table(report, title=title))
    if error is not None:
        err.print(f"[red]error:[/] {escape(describe_error(error))}")


@dnc.command("list")
@click.option("--type", "type_", type=click.Choice(["email", "domain"]), help="only this entry type")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "jsonl"]),
    default="table",
    show_default=True,
    help="a table for reading, or CSV or JSON Lines for other programs",
)
@click.option("--limit", type=click.IntRange(min=1), help="stop after N entries")
@concurrency_option
@click.pass_obj
def dnc_list(
    settings: Settings, type_: str | None, fmt: str, limit: int | None, concurrency: Concurrency
) -> None:
    """List DNC entries (pages are fetched ahead, in order; see ``client.dnc.list``)."""

    async def work() -> int:
        rows = []  # only the table is held; csv and jsonl stream
        count = 0
        if fmt == "csv":
            csv.writer(sys.stdout).writerow(_FIELDS)
        async with (
            open_client(settings) as client,
            contextlib.aclosing(client.dnc.list(type=type_, concurrency=concurrency)) as entries,
        ):
            async for entry in entries:
                count += 1
                if fmt == "table":
                    rows.append(entry)
                else:
                    _emit(sys.stdout, fmt, entry)
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


# What stops an import before it lands anything, and says all in one line.
STOPS_BEFORE_ANYTHING: Final = (*CONFIGURATION_ERRORS, APIConnectionError)

_FIELDS: Final = ("email", "type", "reason", "created_at", "id")


def _emit(handle: Any, fmt: str, entry: Any) -> None:
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
    csv.writer(handle).writerow(values)


@dnc.command("export")
@click.argument("file", type=OutputPath((".csv", ".jsonl", ".ndjson", ".txt"), gzip=True))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl", "txt"]), help="default: from the file name"
)
@click.option("--type", "type_", type=click.Choice(["email", "domain"]), help="only this entry type")
@concurrency_option
@click.pass_obj
def dnc_export(
    settings: Settings, file: str, fmt: str | None, type_: str | None, concurrency: Concurrency
) -> None:
    """Write every DNC entry to FILE, pages fetched ahead and written in order, with progress.

    The progress bar shows entries, pages and the time left (the total is
    known from the first page). Every entry present for the whole export is
    written once, even while the list changes (see ``client.dnc.list``).

    The format follows the name: .jsonl or .ndjson for JSON Lines, .txt for one
    address per line, .csv (or no extension) CSV with a header row; .gz
    compresses any of them. Other extensions are refused.
    """
    plain = file.removesuffix(".gz")
    chosen = fmt or (
        "jsonl" if plain.endswith((".jsonl", ".ndjson")) else "txt" if plain.endswith(".txt") else "csv"
    )

    async def work() -> int:
        count = 0
        opener: Any = gzip.open if file.endswith(".gz") else open
        pages = 0
        columns = (
            TextColumn("exporting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("entries · {task.fields[pages]} pages"),
            TimeRemainingColumn(),
        )
        async with open_client(settings) as client:
            with (
                opener(file, "wt", newline="", encoding="utf-8") as handle,
                Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress,
            ):
                task = progress.add_task("export", total=None, pages=0)
                if chosen == "csv":  # the header even when the list is empty: the file says what it is
                    csv.writer(handle).writerow(_FIELDS)
                walk = client.dnc.pages(type=type_, concurrency=concurrency)
                async with contextlib.aclosing(walk) as walked:
                    async for page in walked:
                        if progress.tasks[task].total is None and page.pagination.total is not None:
                            progress.update(task, total=page.pagination.total)
                        for entry in page.items:
                            _emit(handle, chosen, entry)
                            count += 1
                        pages += 1
                        progress.update(task, completed=count, pages=pages)
        err.print(f"exported {count:,} entries ({pages:,} pages) to {escape(file)}")
        return EXIT_OK

    run(settings, work)

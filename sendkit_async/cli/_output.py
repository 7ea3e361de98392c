"""What the command line shows: the progress bar, the summary table, the rejects file, errors."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from sendkit_async import APIConnectionError, APIStatusError, SendKitError
from sendkit_async.bulk import DryRunReport, ImportAbortedError, ImportProgress, ImportReport

from ._input import InputFile, UnreadableInputError

__all__ = ["ImportDisplay", "describe_error", "plural", "report_json", "summary_table", "write_rejects"]

_HINTS = {
    401: "check SENDKIT_API_KEY or --api-key-file",
    403: "this key may not act on that workspace; check SENDKIT_WORKSPACE_ID",
    404: "check the base URL and the id",
    429: "the API is rate limiting; lower --concurrency or set --max-rate",
}


# The library's advice names Python arguments; the command line's names flags.
_CLI_WORDS: Final = (
    ("pass api_key=... or set SENDKIT_API_KEY", "set SENDKIT_API_KEY or pass --api-key-file"),
    ("pass workspace_id=... or set SENDKIT_WORKSPACE_ID", "pass --workspace-id or set SENDKIT_WORKSPACE_ID"),
    ("drop workspace_id / SENDKIT_WORKSPACE_ID", "drop --workspace-id / SENDKIT_WORKSPACE_ID"),
    ("use https:// or pass allow_insecure_http=True", "use an https:// --base-url (or SENDKIT_BASE_URL)"),
    ("pass lease_wait=... to wait", "pass --lease-wait SECONDS to wait"),
)


def _in_cli_words(text: str) -> str:
    for library, cli in _CLI_WORDS:
        text = text.replace(library, cli)
    return text


def describe_error(exc: BaseException) -> str:
    """One line: what failed and what to do about it, in flags (never the key, never a traceback)."""
    cause = exc.__cause__ if isinstance(exc, ImportAbortedError) and exc.__cause__ else exc
    if isinstance(cause, APIStatusError):
        what = cause.error or "error"
        hint = _HINTS.get(cause.status) or (
            "the service failed; try again later (with --checkpoint to resume)" if cause.status >= 500 else ""  # noqa: PLR2004
        )
        line = f"{cause.status} {what}: {cause.message}"
        return f"{line} ({hint})" if hint else line
    if isinstance(cause, APIConnectionError):
        return f"{cause} (check the network and SENDKIT_BASE_URL)"
    if isinstance(cause, (SendKitError, UnreadableInputError)):
        return _in_cli_words(str(cause))
    return f"{type(cause).__name__}: {cause}"


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 batch``, ``2 batches``: the count, grouped, with the word that agrees with it."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


class _CountsColumn(ProgressColumn):
    """Entries acknowledged, their rate, batches, and retries and 429s when there are any."""

    def render(self, task: Task) -> Text:
        snapshot: ImportProgress | None = task.fields.get("snapshot")
        if snapshot is None:
            return Text("starting…", style="dim")
        parts = [
            f"{snapshot.read:,} done",
            f"{snapshot.entries_per_second:,.0f}/s",
            plural(snapshot.batches, "batch", "batches"),
        ]
        if snapshot.retries:
            parts.append(plural(snapshot.retries, "retry", "retries"))
        if snapshot.rate_limited:
            parts.append(plural(snapshot.rate_limited, "429"))
        # One line at any width: what does not fit is cut, never wrapped onto a second.
        return Text(" · ".join(parts), no_wrap=True, overflow="ellipsis")


class ImportDisplay:
    """A rich progress bar of the entries the server has acknowledged (or refused, or failed).

    The bar counts entries whose batch is accounted for, not lines read ahead
    of the sends. Its total is exact once the whole input is read; before
    that, for a file of known size, it is estimated from the bytes read so
    far; from a pipe it is unknown (no bar, only the counts).
    """

    def __init__(self, console: Console, source: InputFile, *, enabled: bool) -> None:
        self._console = console
        self._source = source
        self._enabled = enabled
        self._progress: Progress | None = None
        self._task: Any = None

    @contextmanager
    def running(self) -> Iterator[ImportDisplay]:
        """Show the bar while the block runs."""
        if not self._enabled:
            yield self
            return
        columns: list[ProgressColumn | str] = [
            TextColumn("[bold]importing"),
            BarColumn(bar_width=12),
            TaskProgressColumn(),
            TimeRemainingColumn(compact=True),
            _CountsColumn(),
        ]
        with Progress(*columns, console=self._console, transient=False) as progress:
            self._progress = progress
            self._task = progress.add_task("import", total=None, snapshot=None)
            yield self

    def total(self) -> int | None:
        """How many entries the input holds: exact once read to its end, else estimated from its bytes."""
        source = self._source
        if source.read_all:
            return source.items_read
        if source.total_bytes and source.bytes_read and source.items_read:
            return max(source.items_read, round(source.items_read * source.total_bytes / source.bytes_read))
        return None

    def update(self, snapshot: ImportProgress) -> None:
        """Show the latest counts."""
        if self._progress is None:
            return
        self._progress.update(self._task, total=self.total(), completed=snapshot.read, snapshot=snapshot)


def summary_table(report: ImportReport | DryRunReport, *, title: str) -> Table:
    """The end-of-job counts as a table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, str]] = [("read", f"{report.read:,}"), ("rejected", f"{len(report.rejected):,}")]
    rows.append(("duplicates", f"{report.duplicates:,}"))
    if isinstance(report, DryRunReport):
        rows += [
            ("valid (would send)", f"{report.valid:,}"),
            ("  of them whole domains", f"{report.domains:,}"),
            ("batches", f"{report.batches:,}"),
        ]
    else:
        rows += [
            ("imported", f"{report.imported:,}"),
            ("skipped (already listed)", f"{report.skipped:,}"),
            ("  of them whole domains", f"{report.domains:,}"),
            ("failed", f"{len(report.failed):,}"),
            ("batches", f"{report.batches:,}"),
            ("requests", f"{report.requests:,}"),
            ("retries", f"{report.retries:,}"),
            ("429s", f"{report.rate_limited:,}"),
            ("elapsed", f"{report.elapsed:.1f} s"),
            ("entries/s", f"{report.entries_per_second:,.0f}"),
        ]
        if report.resumed_batches:
            rows.append(("resumed batches", f"{report.resumed_batches:,}"))
    for name, value in rows:
        table.add_row(name, value)
    return table


def report_json(report: ImportReport | DryRunReport, source: InputFile, **extra: Any) -> bytes:
    """The report as one JSON object, with input line numbers on every listed entry."""
    data: dict[str, Any] = {
        "read": report.read,
        "rejected": len(report.rejected),
        "duplicates": report.duplicates,
    }
    if isinstance(report, DryRunReport):
        data |= {"valid": report.valid, "domains": report.domains, "batches": report.batches}
    else:
        data |= {
            "imported": report.imported,
            "skipped": report.skipped,
            "domains": report.domains,
            "failed": len(report.failed),
            "batches": report.batches,
            "requests": report.requests,
            "retries": report.retries,
            "rate_limited": report.rate_limited,
            "elapsed": round(report.elapsed, 3),
            "entries_per_second": round(report.entries_per_second, 1),
            "resumed_batches": report.resumed_batches,
            "stopped_at": report.stopped_at,
            "failures": [
                {
                    "line": source.line_of(f.position),
                    "email": f.email,
                    "kind": f.kind.value,
                    "reason": f.reason,
                }
                for f in report.failed
            ],
        }
    data["rejections"] = [
        {"line": source.line_of(r.position), "value": r.value, "reason": r.reason} for r in report.rejected
    ]
    return orjson.dumps(data | extra)


def write_rejects(
    path: str | os.PathLike[str], report: ImportReport | DryRunReport, source: InputFile
) -> int:
    """Write every rejected and failed entry as CSV; return the row count.

    Columns: the input line, the value as read, why (kind and reason), and
    the original row of the file (read again from disk; empty for stdin).
    """
    rows: list[tuple[int, str, str, str]] = [
        (source.line_of(r.position), r.value, "rejected", r.reason) for r in report.rejected
    ]
    if isinstance(report, ImportReport):
        rows += [(source.line_of(f.position), f.email, f.kind.value, f.reason) for f in report.failed]
    rows.sort()
    originals = source.lines_at({row[0] for row in rows})
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "value", "kind", "reason", "row"])
        writer.writerows((*row, originals.get(row[0], "")) for row in rows)
    return len(rows)

"""Streaming readers for the import file: CSV with a header, a bare list, or JSON Lines.

The format is detected from the content, ``-`` reads standard input, and
gzip is recognised by its magic bytes. Lines are read in chunks on a worker
thread, so the event loop never waits on the disk, and never all at once.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import gzip
import io
import itertools
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any, Final

import anyio.to_thread
import orjson

from sendkit_async.bulk import UnreadableItem
from sendkit_async.models import ENTRY_FIELDS, DncReason, EntryTypeOption

__all__ = ["InputFile", "UnreadableInputError"]

# What spreadsheets and CRMs call the address column, compared without case,
# spaces, hyphens or underscores.
_EMAIL_NAMES: Final = frozenset({"email", "emailaddress", "mail", "mailaddress", "emails", "domain"})
_DELIMITERS: Final = (",", ";", "\t", "|")


def _field(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("-", "").replace("_", "")


# Byte-order marks and the codec that reads past them (UTF-32's before UTF-16's: it starts the same).
_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _as_text(buffered: Any, encoding: str | None = None) -> tuple[gzip.GzipFile | None, io.TextIOWrapper]:
    """A peekable byte stream as text: gunzipped if it starts like gzip.

    The encoding is ``encoding`` when given (``--encoding``); else a byte-order
    mark says it (UTF-8, UTF-16 or UTF-32, as Excel's "Unicode text" writes);
    else UTF-8. Undecodable bytes become U+FFFD, so a wrong guess shows as
    rejected rows, never as a crash.
    """
    unzipped = gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == _GZIP_MAGIC else None
    stream: Any = unzipped or buffered
    if encoding is None:
        head = stream.peek(4)[:4]
        encoding = next((codec for bom, codec in _BOMS if head.startswith(bom)), "utf-8-sig")
    return unzipped, io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="")


def _comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _first_line(lines: Iterator[tuple[int, str]]) -> tuple[int, str] | None:
    """The next numbered line that is neither blank nor a ``#`` comment."""
    return next(((n, line) for n, line in lines if line.strip() and not _comment(line)), None)


def _json_object(line: str) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _delimiter(line: str) -> str | None:
    """The delimiter a header line uses most (``None``: a single column)."""
    counts = {d: len(next(csv.reader([line], delimiter=d))) - 1 for d in _DELIMITERS if d in line}
    best = max(counts, key=lambda d: counts[d], default=None)
    return best if best is not None and counts[best] > 0 else None


def _email_header(cells: list[str]) -> int | None:
    """The index of the email column among header cells, or ``None``."""
    return next((index for index, cell in enumerate(cells) if _field(cell) in _EMAIL_NAMES), None)


def _implied_type(name: str) -> EntryTypeOption:
    """What a column's name says its values are: ``domain``, ``email`` or ``auto`` (not said)."""
    if name in {"domain", "domains"}:
        return "domain"
    return "email" if name in _EMAIL_NAMES or "mail" in name else "auto"


def _looks_like_header(cells: list[str]) -> bool:
    """A first row names its columns when none of its cells is an address."""
    return not any("@" in cell for cell in cells)


_CHUNK_LINES: Final = 4096
_SEP_LINE: Final = re.compile(r"sep=(.)", re.IGNORECASE)
_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZIP_MAGIC: Final = b"PK\x03\x04"


class UnreadableInputError(Exception):
    """The file cannot be read as an import (exit code 2)."""


class InputFile:
    """One import source: opened lazily, read as items with their line numbers.

    Attributes:
        total_bytes: the file's size on disk, when known (not for standard input).
        bytes_read: how far the reader has got in the file on disk.
        format: ``csv``, ``list`` or ``jsonl`` once detected.
        entry_type: once open, the type the file implies for entries that
            state none: ``email`` for a CSV column named like an address
            column (email, e-mail, mail, ...), ``domain`` for a column named
            domain, ``auto`` (inferred per value) for a bare list or a column
            found by its content. Unless ``type_given`` (``--type``), a JSON
            line's ``email`` key without a ``type`` is an address, the same way.
    """

    def __init__(
        self,
        path: str,
        *,
        column: str | None = None,
        delimiter: str | None = None,
        header: bool | None = None,
        reason_given: bool = False,
        type_given: bool = False,
        encoding: str | None = None,
    ) -> None:
        self.path = path
        # --column (a name or a 1-based number), --delimiter, --no-header, and
        # whether --reason overrides a reason column.
        self.column = column
        self.delimiter = delimiter
        self.header = header
        self.reason_given = reason_given
        self.type_given = type_given
        self.encoding = encoding
        self.format: str | None = None
        self.entry_type: EntryTypeOption = "auto"
        self.total_bytes: int | None = None
        self.bytes_read = 0
        self.items_read = 0  # items handed out so far
        self.read_all = False  # whether the input has been read to its end
        # (position, line - position) where that offset starts to apply:
        # sparse, since only headers and blank lines shift it.
        self._offsets: list[tuple[int, int]] = []
        self._raw: IO[bytes] | None = None
        self._gzip: gzip.GzipFile | None = None
        self._text: io.TextIOWrapper | None = None
        self._lines: Iterator[tuple[int, Any]] | None = None

    def line_of(self, position: int) -> int:
        """The 1-based line number of the item at ``position`` (0-based)."""
        index = bisect.bisect_right(self._offsets, (position, sys.maxsize)) - 1
        return position + (self._offsets[index][1] if index >= 0 else 1)

    def _open_sync(self) -> Iterator[tuple[int, Any]]:
        if self.path == "-":
            raw: Any = sys.stdin.buffer
        else:
            path = Path(self.path)
            if path.is_dir():
                raise UnreadableInputError(f"{self.path} is a folder, not a file: name the file to import")
            if not path.is_file():
                raise UnreadableInputError(f"no such file: {self.path}")
            self.total_bytes = path.stat().st_size
            raw = path.open("rb")
        # peek() sniffs gzip without consuming; wrap sources that cannot peek.
        buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
        self._raw = raw
        if buffered.peek(4)[:4] == _ZIP_MAGIC:
            if self.path != "-":
                raw.close()
            raise UnreadableInputError(
                f"{self.path} is a zip archive (an Excel .xlsx workbook?), not text: "
                "save it as CSV (UTF-8) and import that"
            )
        # Held on self: the wrapper closes what it wraps when collected.
        self._gzip, self._text = _as_text(buffered, self.encoding)
        try:
            return self._items(self._text)
        except BaseException:
            self._close_sync()
            raise

    def _close_sync(self) -> None:
        if self._text is None:
            return
        if self.path == "-":
            self._text.detach()  # never close the process's standard input
            if self._gzip is not None:
                self._gzip.close()
        else:
            self._text.close()
            if self._raw is not None:
                self._raw.close()
        self._text = None

    async def open(self) -> None:
        """Open the file and detect its format (raises :class:`UnreadableInputError` early)."""
        if self._lines is None:
            self._lines = await anyio.to_thread.run_sync(self._open_sync)

    def _items(self, text: io.TextIOWrapper) -> Iterator[tuple[int, Any]]:
        lines = enumerate(text, start=1)
        first = _first_line(lines)
        declared = None if first is None else _SEP_LINE.fullmatch(first[1].strip())
        if declared is not None:  # Excel's "sep=;" first line names the delimiter
            self.delimiter = self.delimiter or declared.group(1)
            first = _first_line(lines)
        if first is None:
            self.format = "list" if declared is None else "csv"
            return iter(())
        number, line = first
        stripped = line.strip()
        if "\x00" in stripped:
            raise UnreadableInputError(
                f"line {number}: this is a binary file, not a list of addresses "
                "(UTF-16 without a byte-order mark? pass --encoding utf-16-le; "
                "a spreadsheet? save it as CSV)"
            )
        if stripped.startswith("{") and _json_object(stripped):
            self.format = "jsonl"
            return self._jsonl([(number, line)], lines)
        delimiter = self.delimiter or _delimiter(stripped)
        one_column = next(csv.reader([stripped]))
        if delimiter is not None or self.column is not None or _email_header(one_column) is not None:
            self.format = "csv"
            return self._csv(number, line, lines, delimiter or ",")
        self.format = "list"
        return self._list([(number, line)], lines)

    @staticmethod
    def _list(head: list[tuple[int, str]], lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, Any]]:
        for number, line in itertools.chain(head, lines):
            if line.strip() and not _comment(line):
                yield number, line.strip()

    def _jsonl(
        self, head: list[tuple[int, str]], lines: Iterator[tuple[int, str]]
    ) -> Iterator[tuple[int, Any]]:
        for number, line in itertools.chain(head, lines):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, UnreadableItem(f"not valid JSON: {exc}", text=line.strip())
                continue
            # Other fields of a line (a name, a source) are the file's business,
            # not the entry's; names match whatever their case ("Email").
            if isinstance(value, dict):
                value = {key: v for k, v in value.items() if (key := _field(str(k))) in ENTRY_FIELDS}
                if "email" in value and "type" not in value and not self.type_given:
                    value["type"] = "email"  # named an address, like an email column
            yield number, value

    def _csv(
        self, number: int, header_line: str, lines: Iterator[tuple[int, str]], delimiter: str
    ) -> Iterator[tuple[int, Any]]:
        cells = next(csv.reader([header_line], delimiter=delimiter))
        names = [_field(cell) for cell in cells]
        header = self.header if self.header is not None else _looks_like_header(cells)
        email = self._email_column(number, cells, names, header=header)
        if header:
            self.entry_type = _implied_type(names[email])
        columns = {"email": email}
        for field in ("type", "reason"):
            if header and field in names and not (field == "reason" and self.reason_given):
                columns[field] = names.index(field)
        rows = self._csv_rows(number, columns, lines, delimiter)
        if header:
            return rows
        first = self._csv_rows(number - 1, columns, iter([(number, header_line)]), delimiter)
        return itertools.chain(first, rows)

    def _email_column(self, number: int, cells: list[str], names: list[str], *, header: bool) -> int:
        if self.column is not None:
            if self.column.isdigit() and 1 <= int(self.column) <= len(cells):
                return int(self.column) - 1
            if _field(self.column) in names:
                return names.index(_field(self.column))
            raise UnreadableInputError(f"--column {self.column}: no such column in line {number} ({cells})")
        if header:
            found = _email_header(cells)
            if found is not None:
                return found
            raise UnreadableInputError(
                f"line {number}: no email column among {cells}; name it with --column NAME or NUMBER"
            )
        with_at = [index for index, cell in enumerate(cells) if "@" in cell]
        if len(with_at) == 1:
            return with_at[0]
        raise UnreadableInputError(
            f"line {number}: cannot tell the email column; pass --column NAME or NUMBER"
        )

    @staticmethod
    def _csv_rows(
        number: int, columns: dict[str, int], lines: Iterator[tuple[int, str]], delimiter: str
    ) -> Iterator[tuple[int, Any]]:
        # One reader over the rest of the stream; line_num counts the physical
        # lines it consumed, so quoted newlines keep the numbering right.
        reader = csv.reader((line for _, line in lines), delimiter=delimiter)
        reasons = {reason.value for reason in DncReason}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            record = {
                field: row[index].strip()
                for field, index in columns.items()
                if index < len(row) and row[index].strip()
            }
            reason = record.get("reason")
            if reason is not None and reason.lower() not in reasons:
                raise UnreadableInputError(
                    f"line {number + reader.line_num}: the reason column says {reason!r}, which is not a "
                    f"reason ({', '.join(sorted(reasons))}); "
                    "pass --reason REASON to use one reason for every row"
                )
            yield number + reader.line_num, record

    def lines_at(self, numbers: set[int]) -> dict[int, str]:
        """The text of these lines of the file, read again from disk (nothing for standard input)."""
        if self.path == "-" or not numbers:
            return {}
        found: dict[int, str] = {}
        last = max(numbers)
        with Path(self.path).open("rb") as raw:
            unzipped, text = _as_text(
                raw, self.encoding
            )  # read exactly as the import read it, so lines match
            for number, line in enumerate(text, start=1):
                if number in numbers:
                    found[number] = line.rstrip("\r\n")
                if number >= last:
                    break
            text.detach()
            if unzipped is not None:
                unzipped.close()
        return found

    def _chunk(self, items: Iterator[tuple[int, Any]]) -> list[tuple[int, Any]]:
        chunk = [pair for _, pair in zip(range(_CHUNK_LINES), items, strict=False)]
        if self._raw is not None and self.total_bytes is not None and not self._raw.closed:
            self.bytes_read = self._raw.tell()
        return chunk

    async def entries(self) -> AsyncIterator[Any]:
        """Yield the items in order, recording line numbers for :meth:`line_of`."""
        await self.open()
        items, self._lines = self._lines, None
        if items is None:  # pragma: no cover - open() just set it
            raise RuntimeError("the input was already read")
        position = 0
        offset = None
        try:
            while chunk := await anyio.to_thread.run_sync(self._chunk, items):
                for line, item in chunk:
                    if line - position != offset:
                        offset = line - position
                        self._offsets.append((position, offset))
                    position += 1
                    self.items_read = position
                    yield item
            self.read_all = True
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close_sync)
        if self.total_bytes is not None:
            self.bytes_read = self.total_bytes

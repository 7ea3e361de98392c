"""Streaming readers for the import file: CSV with a header, a bare list, or JSON Lines.

The format is detected from the content, ``-`` reads standard input, and
gzip is recognised by its magic bytes. Lines are read in chunks on a worker
thread, so the event loop never waits on the disk, and never all at once.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import itertools
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any, Final

import anyio.to_thread
import orjson

from sendkit_async.models import ENTRY_FIELDS

__all__ = ["InputFile", "UnreadableInputError"]

_CHUNK_LINES: Final = 4096
_GZIP_MAGIC: Final = b"\x1f\x8b"


class UnreadableInputError(Exception):
    """The file cannot be read as an import (exit code 2)."""


class InputFile:
    """One import source: opened lazily, read as items with their line numbers.

    Attributes:
        total_bytes: the file's size on disk, when known (not for standard input).
        bytes_read: how far the reader has got in the file on disk.
        format: ``csv``, ``list`` or ``jsonl`` once detected.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.format: str | None = None
        self.total_bytes: int | None = None
        self.bytes_read = 0
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
            if not path.is_file():
                raise UnreadableInputError(f"no such file: {self.path}")
            self.total_bytes = path.stat().st_size
            raw = path.open("rb")
        # peek() sniffs gzip without consuming; wrap sources that cannot peek.
        buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
        self._raw = raw
        self._gzip = gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == _GZIP_MAGIC else None
        # Held on self: the wrapper closes what it wraps when collected.
        self._text = io.TextIOWrapper(
            self._gzip or buffered, encoding="utf-8-sig", errors="replace", newline=""
        )
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
        first = next(((n, line) for n, line in lines if line.strip()), None)
        if first is None:
            self.format = "list"
            return iter(())
        number, line = first
        stripped = line.strip()
        if stripped.startswith(("{", '"')):
            self.format = "jsonl"
            return self._jsonl([(number, line)], lines)
        if "," in stripped or stripped.lower() in {"email", "domain"}:
            self.format = "csv"
            return self._csv(number, line, lines)
        self.format = "list"
        return self._list([(number, line)], lines)

    @staticmethod
    def _list(head: list[tuple[int, str]], lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, Any]]:
        for number, line in itertools.chain(head, lines):
            if line.strip():
                yield number, line.strip()

    @staticmethod
    def _jsonl(head: list[tuple[int, str]], lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, Any]]:
        for number, line in itertools.chain(head, lines):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, ValueError(f"not valid JSON: {exc}")
                continue
            # Other fields of a line (a name, a source) are the file's business, not the entry's.
            yield (
                number,
                {k: v for k, v in value.items() if k in ENTRY_FIELDS} if isinstance(value, dict) else value,
            )

    def _csv(
        self, number: int, header_line: str, lines: Iterator[tuple[int, str]]
    ) -> Iterator[tuple[int, Any]]:
        header = [h.strip().lower() for h in next(csv.reader([header_line]))]
        if "email" not in header and "domain" not in header:
            raise UnreadableInputError(f"line {number}: a CSV import needs an 'email' column, found {header}")
        return self._csv_rows(number, header, lines)

    @staticmethod
    def _csv_rows(
        number: int, header: list[str], lines: Iterator[tuple[int, str]]
    ) -> Iterator[tuple[int, Any]]:
        # One reader over the rest of the stream; line_num counts the physical
        # lines it consumed, so quoted newlines keep the numbering right.
        reader = csv.reader(line for _, line in lines)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            record = {
                key: value.strip()
                for key, value in zip(header, row, strict=False)
                if key in ENTRY_FIELDS and value.strip()
            }
            yield number + reader.line_num, record

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
                    yield item
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close_sync)
        if self.total_bytes is not None:
            self.bytes_read = self.total_bytes

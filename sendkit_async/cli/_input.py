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

    def line_of(self, position: int) -> int:
        """The 1-based line number of the item at ``position`` (0-based)."""
        index = bisect.bisect_right(self._offsets, (position, sys.maxsize)) - 1
        return position + (self._offsets[index][1] if index >= 0 else 1)

    def _open(self) -> Iterator[tuple[int, Any]]:
        if self.path == "-":
            raw: IO[bytes] = sys.stdin.buffer
        else:
            path = Path(self.path)
            if not path.is_file():
                raise UnreadableInputError(f"no such file: {self.path}")
            self.total_bytes = path.stat().st_size
            raw = path.open("rb")
        self._raw = raw
        # Both sources are buffered readers already; peek() sniffs gzip without consuming.
        buffered: Any = raw
        stream: Any = gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == _GZIP_MAGIC else buffered
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        return self._items(text)

    def _items(self, text: io.TextIOWrapper) -> Iterator[tuple[int, Any]]:
        lines = enumerate(text, start=1)
        first = next(((n, line) for n, line in lines if line.strip()), None)
        if first is None:
            return
        number, line = first
        stripped = line.strip()
        if stripped.startswith(("{", '"')):
            self.format = "jsonl"
            yield from self._jsonl([(number, line)], lines)
        elif "," in stripped or stripped.lower() in {"email", "domain"}:
            self.format = "csv"
            yield from self._csv(number, line, lines)
        else:
            self.format = "list"
            yield number, stripped
            for n, raw in lines:
                if raw.strip():
                    yield n, raw.strip()

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
            yield number, value

    def _csv(
        self, number: int, header_line: str, lines: Iterator[tuple[int, str]]
    ) -> Iterator[tuple[int, Any]]:
        header = [h.strip().lower() for h in next(csv.reader([header_line]))]
        if "email" not in header and "domain" not in header:
            raise UnreadableInputError(f"line {number}: a CSV import needs an 'email' column, found {header}")
        for n, line in lines:
            if not line.strip():
                continue
            row = next(csv.reader([line]))
            record = {key: value.strip() for key, value in zip(header, row, strict=False) if value.strip()}
            yield n, record

    def _chunk(self, items: Iterator[tuple[int, Any]]) -> list[tuple[int, Any]]:
        chunk = [pair for _, pair in zip(range(_CHUNK_LINES), items, strict=False)]
        if self._raw is not None and self.total_bytes is not None:
            self.bytes_read = self._raw.tell()
        return chunk

    async def entries(self) -> AsyncIterator[Any]:
        """Yield the items in order, recording line numbers for :meth:`line_of`."""
        items = await anyio.to_thread.run_sync(self._open)
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
            if self._raw is not None and self._raw is not sys.stdin.buffer:
                await anyio.to_thread.run_sync(self._raw.close)
        if self.total_bytes is not None:
            self.bytes_read = self.total_bytes

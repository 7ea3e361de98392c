"""The addresses a job has seen, to drop repeats: 128-bit keyed digests in one flat table, ~20-36 bytes each.

An exact set of the addresses costs about 100 bytes each (the string and
its slot in a set): a gigabyte for 10,000,000. This keeps two 64-bit digests
of each address instead, in a table of buckets of eight (two numpy arrays,
16 bytes a place), filled to between 44% and 88% before it doubles.

The digests are CPython's string hash (SipHash-1-3, keyed per process at
random unless ``PYTHONHASHSEED`` is set) of the address and of the address
reversed: two keyed 64-bit values, 128 bits in all. A distinct address is
taken for a repeat (and dropped) only if both digests equal another's; over
``n`` distinct addresses that happens with probability about
``n**2 / 2**129``: 1.5e-23 for 100,000,000 addresses, 1.5e-25 for
10,000,000, far below the odds of a memory error. A repeat is never taken
for a new address: equal addresses have equal digests.

Each pair has two buckets it may sit in, the top bits of either digest
(two choices: it takes the emptier), so buckets rarely overflow even near
full; the very few pairs whose two buckets are both full wait in a small
exact stash. Doubling keeps that order (bucket ``b`` splits into ``2b`` and
``2b + 1``, and a pair follows the digest that placed it), so the table
grows in place: its arrays are the start of a reserved stretch of address
space (memory only once written), so doubling copies nothing, and its
buckets split from the top down, a small block at a time; the memory never
holds an old table beside its new one. Lookups and additions go a chunk of
addresses at a time, vectorised.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from typing import Final, NamedTuple

import anyio.lowlevel
import numpy as np
import numpy.typing as npt

__all__ = ["SeenAddresses"]

_WIDTH: Final = 8  # pairs per bucket: a lookup compares a whole bucket at once
_FIRST_BITS: Final = 10  # 1,024 buckets (128 KiB) to start
_RESERVE_FROM: Final = 1 << 16  # buckets past which a table grows into reserved address space
_RESERVED_BUCKETS: Final = 1 << 23  # 512 MiB of address space an array (58 million addresses)
_GROW_BLOCK: Final = 1 << 12  # buckets split at a time when a table doubles (512 KiB of copies, ~2 ms)
_MAX_LOAD: Final = 0.875
_DIGEST_BITS: Final = 64
_BYTE_ONES: Final = np.uint64(0x0101010101010101)  # times eight 0/1 bytes: their sum in the top byte

Digests = npt.NDArray[np.int64]
Indexes = npt.NDArray[np.intp]


def _digests(emails: list[str]) -> tuple[Digests, Digests]:
    """Each address's two 64-bit keyed digests; the second is never 0 (0 marks an empty place)."""
    count = len(emails)
    first = np.fromiter(map(hash, emails), np.int64, count)
    second = np.fromiter(map(hash, [email[::-1] for email in emails]), np.int64, count)
    second[second == 0] = 1
    return first, second


def _ranks(groups: Indexes) -> Indexes:
    """For sorted group numbers, each item's place within its group (0, 1, 2, ...)."""
    count = len(groups)
    index = np.arange(count)
    starts = np.empty(count, np.bool_)
    starts[:1] = True
    np.not_equal(groups[1:], groups[:-1], out=starts[1:])
    ranks: Indexes = index - np.maximum.accumulate(np.where(starts, index, 0))
    return ranks


def _reserved(buckets: int) -> tuple[Digests, Digests] | None:
    """Two zeroed arrays of ``buckets`` buckets in address space reserved, not yet memory (or ``None``).

    Anonymous private mappings: the system gives a page memory when it is
    first written, so the untouched buckets cost nothing, and doubling the
    table within the reservation copies nothing. ``None`` where the system
    will not map them (no POSIX ``mmap``, or strict overcommit): the table
    then grows by copying.
    """
    size = buckets * _WIDTH * 8
    try:
        regions = [
            mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # type: ignore[attr-defined,unused-ignore]
            for _ in range(2)
        ]
    except (AttributeError, OSError, TypeError, ValueError):
        return None
    first, second = (np.frombuffer(region, np.int64).reshape(buckets, _WIDTH) for region in regions)
    return first, second


class _Table:
    """Buckets of eight digest pairs, filled from the left (0 is empty), and the stash of the overflow."""

    __slots__ = ("bits", "count", "first", "region", "second", "stash")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        # The arrays the table is the start of: its own size at first; past 65,536 buckets
        # (about 460,000 addresses), a reservation of address space it grows into.
        self.region: tuple[Digests, Digests] = (
            np.zeros((1 << bits, _WIDTH), np.int64),
            np.zeros((1 << bits, _WIDTH), np.int64),
        )
        self.first: Digests = self.region[0]
        self.second: Digests = self.region[1]
        self.stash: set[tuple[int, int]] = set()  # pairs whose two buckets were full
        self.count = 0

    def buckets(self, first: Digests, second: Digests) -> tuple[Indexes, Indexes]:
        """Each pair's two buckets: the top bits of its first digest, and of its second."""
        return _top(first, self.bits), _top(second, self.bits)

    def lookup(self, first: Digests, second: Digests) -> tuple[npt.NDArray[np.bool_], _Fill]:
        """Whether each pair is here, and how full its buckets are (for :meth:`put`, if nothing changes)."""
        one, two = self.buckets(first, second)
        held_one, held_two = self.second[one], self.second[two]
        wanted = second[:, None]
        here = _any(held_one == wanted) | _any(held_two == wanted)
        if here.any():  # the second digest matched: the first must too (rarely false)
            rows = np.flatnonzero(here)
            wanted, also = second[rows, None], first[rows, None]
            same = _any((held_one[rows] == wanted) & (self.first[one[rows]] == also))
            here[rows] = same | _any((held_two[rows] == wanted) & (self.first[two[rows]] == also))
        if self.stash:  # only a pair whose two buckets are full can be in it
            stash = self.stash
            for index in np.flatnonzero(~here & (held_one[:, -1] != 0) & (held_two[:, -1] != 0)):
                here[index] = (int(first[index]), int(second[index])) in stash
        return here, _Fill(self.bits, one, two, _filled(held_one), _filled(held_two))

    def put(self, first: Digests, second: Digests, fill: _Fill | None = None) -> None:
        """Add pairs that are distinct and not here yet (``fill`` as :meth:`lookup` found them)."""
        self.count += len(first)
        while self.count > (_WIDTH << self.bits) * _MAX_LOAD:
            self.grow()
        self.place(first, second, fill if fill is not None and fill.bits == self.bits else None)

    def place(self, first: Digests, second: Digests, fill: _Fill | None = None) -> None:
        """Each pair takes a free place in the emptier of its buckets; a pair whose two are full, the stash.

        Pairs bound for one bucket in one call take its free places in turn;
        those past its end try again (now to the other bucket, if emptier).
        """
        while len(first):
            if fill is None:
                one, two = self.buckets(first, second)
                count_one, count_two = _filled(self.second[one]), _filled(self.second[two])
            else:
                _, one, two, count_one, count_two = fill
                fill = None
            other = count_two < count_one
            bucket, filled = np.where(other, two, one), np.where(other, count_two, count_one)
            full = filled >= _WIDTH
            if full.any():
                self.stash.update(zip(first[full].tolist(), second[full].tolist(), strict=True))
                keep = ~full
                first, second, bucket, filled = first[keep], second[keep], bucket[keep], filled[keep]
            order = np.argsort(bucket, kind="stable")
            first, second, bucket = first[order], second[order], bucket[order]
            place = filled[order] + _ranks(bucket)
            fits = place < _WIDTH
            self.first[bucket[fits], place[fits]] = first[fits]
            self.second[bucket[fits], place[fits]] = second[fits]
            first, second = first[~fits], second[~fits]

    def grow(self) -> None:
        """Double the buckets in place: bucket ``b``'s pairs split between ``2b`` and ``2b + 1``."""
        for _ in self.growing():
            pass

    def growing(self) -> Iterator[None]:
        """:meth:`grow`, a block of buckets at a time: it yields between blocks (a few ms each).

        Between two blocks the table is half split: look nothing up in it
        and add nothing to it until the iterator is done.
        """
        old = 1 << self.bits
        if 2 * old > len(self.region[0]):  # past the arrays: new ones, the table copied in once
            reserved = _reserved(max(_RESERVED_BUCKETS, 4 * old)) if old >= _RESERVE_FROM else None
            region = reserved or (
                np.zeros((2 * old, _WIDTH), np.int64),
                np.zeros((2 * old, _WIDTH), np.int64),
            )
            region[0][:old], region[1][:old] = self.first, self.second
            self.region = region
        # Within them the next buckets are zero pages: the table grows without a copy.
        self.first, self.second = self.region[0][: 2 * old], self.region[1][: 2 * old]
        self.bits += 1
        # From the top down, a block [low, high) at a time: its pairs land in [2 low, 2 high), past
        # every old bucket not split yet (low >= high - low), so nothing unread is overwritten; the
        # blocks are small, so the copies are. A bucket's pairs split between its two halves, so
        # they always fit.
        high = old
        while high:
            low = max(high - _GROW_BLOCK, high // 2)
            first = self.first[low:high].copy()
            second = self.second[low:high].copy()
            self.first[low:high] = 0
            self.second[low:high] = 0
            held = second != 0
            parent = np.broadcast_to(np.arange(low, high)[:, None], held.shape)[held]
            first, second = first[held], second[held]
            # The digest that placed a pair in its bucket places it in one of the two halves.
            by_first = _top(first, self.bits - 1) == parent
            bucket = np.where(by_first, _top(first, self.bits), _top(second, self.bits))
            order = np.argsort(bucket, kind="stable")
            bucket, place = bucket[order], _ranks(bucket[order])
            self.first[bucket, place] = first[order]
            self.second[bucket, place] = second[order]
            high = low
            yield
        if self.stash:  # a stashed pair may fit one of its buckets now
            pairs = np.array(list(self.stash), np.int64).reshape(-1, 2)
            self.stash = set()
            self.place(pairs[:, 0].copy(), pairs[:, 1].copy())


class _Fill(NamedTuple):
    """Pairs' two buckets in a table of ``2**bits``, and how many places of each are taken."""

    bits: int
    one: Indexes
    two: Indexes
    count_one: Indexes
    count_two: Indexes


def _top(digests: Digests, bits: int) -> Indexes:
    """The top ``bits`` bits of each digest: its bucket in a table of ``2**bits``."""
    if not bits:
        return np.zeros(len(digests), np.intp)
    return (digests.view(np.uint64) >> np.uint64(_DIGEST_BITS - bits)).astype(np.intp)


def _any(matches: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """For each row of eight, whether any is true (read as one 64-bit word: faster than ``any(axis=1)``)."""
    found: npt.NDArray[np.bool_] = np.ascontiguousarray(matches).view(np.uint64)[:, 0] != 0
    return found


def _filled(held: Digests) -> Indexes:
    """For each bucket of eight, how many places hold a pair (a byte per place, summed by one multiply)."""
    marks = np.ascontiguousarray(held != 0).view(np.uint64)[:, 0]
    counts: Indexes = ((marks * _BYTE_ONES) >> np.uint64(56)).astype(np.intp)
    return counts


class SeenAddresses:
    """Every distinct address of a job, as 128-bit digests (see the module docstring for the odds)."""

    __slots__ = ("_table",)

    def __init__(self) -> None:
        self._table = _Table(_FIRST_BITS)

    def __len__(self) -> int:
        return self._table.count

    def nbytes(self) -> int:
        """Bytes it holds (a stashed pair counted at 100 bytes)."""
        table = self._table
        return table.first.nbytes + table.second.nbytes + 100 * len(table.stash)

    def add(self, email: str) -> bool:
        """Remember an address; ``False`` if it was already there."""
        return self.add_many([email])[0]

    def add_many(self, emails: list[str]) -> list[bool]:
        """Remember addresses in order; for each, whether it was new (a repeat in the list is not)."""
        if not emails:
            return []
        first, second = _digests(emails)
        new = np.ones(len(emails), np.bool_)
        if len(dict.fromkeys(emails)) != len(emails):  # repeats within the list: the first is new
            earlier: set[str] = set()
            for index, email in enumerate(emails):
                if email in earlier:
                    new[index] = False
                earlier.add(email)
        mine = np.flatnonzero(new)
        here, fill = self._table.lookup(first[mine], second[mine])
        if here.any():
            new[mine[here]] = False
        self._table.put(first[new], second[new], None if here.any() else fill)
        added: list[bool] = new.tolist()
        return added

    def add_if_all_new(self, emails: dict[str, None]) -> bool:
        """Remember distinct addresses if none is here yet; if one is, remember none and say ``False``."""
        first, second = _digests(list(emails))
        here, fill = self._table.lookup(first, second)
        if here.any():
            return False
        self._table.put(first, second, fill)
        return True

    async def make_room(self, count: int) -> None:
        """Grow the table if ``count`` more addresses could fill it past its load.

        A table of millions takes a few hundred milliseconds to double: a
        block of buckets at a time, yielding to the event loop between blocks
        (each a few milliseconds), as the caller waits and nothing else
        touches the table. On the loop, not a worker thread: a thread would
        hold the GIL against the loop for as long, and look idle to a
        virtual clock.
        """
        table = self._table
        while table.count + count > (_WIDTH << table.bits) * _MAX_LOAD:
            for _ in table.growing():
                await anyio.lowlevel.checkpoint()

    def forget(self) -> None:
        """Let go of every address."""
        self._table = _Table(_FIRST_BITS)

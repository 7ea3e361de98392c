"""The addresses a job has seen, to drop repeats: 128-bit keyed digests in one flat table, ~27 bytes each.

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

There are 16 tables, picked by the first digest's low bits, so that a
table doubling holds the event loop for a 16th of the job. In a table, a
pair's bucket is the top bits of its first digest; the few pairs whose
bucket is full wait in a small exact stash. Doubling keeps that order
(bucket ``b`` splits into ``2b`` and ``2b + 1``), so a table grows in
place: its arrays are the start of a reserved stretch of address space
(memory only once written), so doubling copies nothing, and its buckets
split from the top down, a small block at a time; the memory never holds an
old table beside its new one. Lookups and
additions go a chunk of addresses at a time, vectorised.
"""

from __future__ import annotations

import mmap
from typing import Final

import anyio.lowlevel
import anyio.to_thread
import numpy as np
import numpy.typing as npt

__all__ = ["SeenAddresses"]

_WIDTH: Final = 8  # pairs per bucket: a lookup compares a whole bucket at once
_SHARD_BITS: Final = 0  # one table (more, picked by a digest's low bits, would each grow on its own)
_SHARDS: Final = 1 << _SHARD_BITS
_FIRST_BITS: Final = 10  # 1,024 buckets (128 KiB) a table to start
_RESERVE_FROM: Final = 1 << 16  # buckets past which a table grows into reserved address space
_RESERVED_BUCKETS: Final = 1 << 23  # 512 MiB of address space an array (58 million addresses)
_GROW_BLOCK: Final = 1 << 14  # buckets split at a time when a table doubles (2 MiB of copies)
_MAX_LOAD: Final = 0.875
_GROW_ON_THREAD_FROM: Final = 14  # bits past which a table doubles on a worker thread (over 5 ms)
_DIGEST_BITS: Final = 64

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
    """One shard: buckets of eight digest pairs, filled from the left (0 is empty), and its stash."""

    __slots__ = ("bits", "count", "first", "region", "second", "stash")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        # The arrays the table is the start of: its own size at first; past 131,072 buckets
        # (about 900,000 addresses), a reservation of address space it grows into.
        self.region: tuple[Digests, Digests] = (
            np.zeros((1 << bits, _WIDTH), np.int64),
            np.zeros((1 << bits, _WIDTH), np.int64),
        )
        self.first: Digests = self.region[0]
        self.second: Digests = self.region[1]
        self.stash: set[tuple[int, int]] = set()  # pairs whose bucket was full
        self.count = 0

    def bucket(self, first: Digests) -> Indexes:
        # Below the shard's own bits: the top bits of the digest pick the bucket.
        return (
            (first.view(np.uint64) << np.uint64(_SHARD_BITS)) >> np.uint64(_DIGEST_BITS - self.bits)
        ).astype(np.intp)

    def lookup(self, first: Digests, second: Digests) -> tuple[npt.NDArray[np.bool_], Indexes, Digests]:
        """Whether each pair is here, with its bucket and that bucket's second digests."""
        bucket = self.bucket(first)
        held = self.second[bucket]
        here: npt.NDArray[np.bool_] = (held == second[:, None]).any(axis=1)
        if here.any():  # the second digest matched: the first must too (rarely false)
            rows = np.flatnonzero(here)
            same = (held[rows] == second[rows, None]) & (self.first[bucket[rows]] == first[rows, None])
            here[rows] = same.any(axis=1)
        if self.stash:
            stash = self.stash
            for index in np.flatnonzero(~here & (held[:, -1] != 0)):
                here[index] = (int(first[index]), int(second[index])) in stash
        return here, bucket, held

    def put(self, first: Digests, second: Digests, bucket: Indexes, held: Digests) -> None:
        """Add pairs that are distinct and not here yet (``bucket`` and ``held`` as looked up)."""
        self.count += len(first)
        if self.count <= (_WIDTH << self.bits) * _MAX_LOAD:
            self.place(bucket, first, second, np.count_nonzero(held, axis=1))
            return
        while self.count > (_WIDTH << self.bits) * _MAX_LOAD:
            self.grow()
        self.place(self.bucket(first), first, second)

    def place(self, bucket: Indexes, first: Digests, second: Digests, filled: Indexes | None = None) -> None:
        """Pairs bound for one bucket take its empty places in turn; those past its end go to the stash."""
        order = np.argsort(bucket, kind="stable")
        bucket, first, second = bucket[order], first[order], second[order]
        filled = np.count_nonzero(self.second[bucket], axis=1) if filled is None else filled[order]
        place = filled + _ranks(bucket)
        fits = place < _WIDTH
        self.first[bucket[fits], place[fits]] = first[fits]
        self.second[bucket[fits], place[fits]] = second[fits]
        if not fits.all():
            self.stash.update(zip(first[~fits].tolist(), second[~fits].tolist(), strict=True))

    def grow(self) -> None:
        """Double the buckets in place: bucket ``b``'s pairs split between ``2b`` and ``2b + 1``."""
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
        # blocks are small, so the copies are.
        high = old
        while high:
            low = max(high - _GROW_BLOCK, high // 2)
            first = self.first[low:high].copy()
            second = self.second[low:high].copy()
            self.first[low:high] = 0
            self.second[low:high] = 0
            held = second != 0
            first, second = first[held], second[held]
            self.place(self.bucket(first), first, second)
            high = low
        if self.stash:  # a stashed pair may fit its bucket now
            pairs = np.array(list(self.stash), np.int64).reshape(-1, 2)
            self.stash = set()
            first, second = pairs[:, 0].copy(), pairs[:, 1].copy()
            self.place(self.bucket(first), first, second)


class SeenAddresses:
    """Every distinct address of a job, as 128-bit digests (see the module docstring for the odds)."""

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        self._tables = [_Table(_FIRST_BITS) for _ in range(_SHARDS)]

    def __len__(self) -> int:
        return sum(table.count for table in self._tables)

    def nbytes(self) -> int:
        """Bytes it holds (a stashed pair counted at 100 bytes)."""
        return sum(
            table.first.nbytes + table.second.nbytes + 100 * len(table.stash) for table in self._tables
        )

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
        for table, mine in self._by_shard(first, np.flatnonzero(new)):
            here, bucket, held = table.lookup(first[mine], second[mine])
            new[mine[here]] = False
            fresh = ~here
            table.put(first[mine[fresh]], second[mine[fresh]], bucket[fresh], held[fresh])
        added: list[bool] = new.tolist()
        return added

    def add_if_all_new(self, emails: dict[str, None]) -> bool:
        """Remember distinct addresses if none is here yet; if one is, remember none and say ``False``."""
        first, second = _digests(list(emails))
        looked = []
        for table, mine in self._by_shard(first, np.arange(len(first))):
            here, bucket, held = table.lookup(first[mine], second[mine])
            if here.any():
                return False
            looked.append((table, mine, bucket, held))
        for table, mine, bucket, held in looked:
            table.put(first[mine], second[mine], bucket, held)
        return True

    def _by_shard(self, first: Digests, indexes: Indexes) -> list[tuple[_Table, Indexes]]:
        """The tables the digests at ``indexes`` fall in, each with its indexes (in their order)."""
        picks = first[indexes] & (_SHARDS - 1)
        order = np.argsort(picks, kind="stable")
        bounds = np.searchsorted(picks[order], np.arange(_SHARDS + 1))
        return [
            (self._tables[shard], indexes[order[bounds[shard] : bounds[shard + 1]]])
            for shard in range(_SHARDS)
            if bounds[shard + 1] > bounds[shard]
        ]

    async def make_room(self, count: int) -> None:
        """Grow every table that ``count`` more addresses could fill past its load.

        A table of millions takes a few hundred milliseconds to double: off
        the event loop, on a worker thread (numpy lets go of the GIL while it
        copies and sorts), with nothing else touching the table meanwhile, as
        the caller waits. A small one (under 100,000 addresses) doubles
        in a few milliseconds, in place: a thread would cost more than it.
        """
        for table in self._tables:
            while table.count + count > (_WIDTH << table.bits) * _MAX_LOAD:
                if table.bits < _GROW_ON_THREAD_FROM:
                    table.grow()
                    await anyio.lowlevel.checkpoint()
                else:
                    await anyio.to_thread.run_sync(table.grow)

    async def forget(self) -> None:
        """Let go of every address, a table at a time."""
        for shard in range(_SHARDS):
            self._tables[shard] = _Table(_FIRST_BITS)
            await anyio.lowlevel.checkpoint()

"""Listing fetched ahead: exact on a static list, complete and unique on one that changes."""

from __future__ import annotations

import contextlib
import gc
import random
import weakref

import anyio
import pytest

from sendkit_async import SendKit, dnc
from sendkit_async._flow import FixedLimit
from sendkit_async._walk import walk_cursor
from sendkit_async.models import DncPage
from sendkit_async.testing import FakeSendKit

SIZES = [0, 1, 100, 101, 2_345]


def _seed(fake: FakeSendKit, count: int, prefix: str = "u") -> list[str]:
    emails = [f"{prefix}{number}@example.com" for number in range(count)]
    fake.add_dnc(emails)
    return emails


async def _walk(client: SendKit, **kwargs) -> list[str]:
    async with contextlib.aclosing(client.dnc.list(**kwargs)) as entries:
        return [entry.email async for entry in entries]


@pytest.mark.parametrize("order", ["oldest", "newest"])
@pytest.mark.parametrize("concurrency", ["auto", 1, 8])
@pytest.mark.parametrize("size", SIZES)
async def test_a_static_list_comes_back_exactly_once_in_the_api_order(size, concurrency, order) -> None:
    async with FakeSendKit(list_order=order) as fake, fake.client() as client:
        emails = _seed(fake, size)
        fake.stats.reset()
        walked = await _walk(client, concurrency=concurrency)
    assert walked == (emails if order == "oldest" else emails[::-1])
    pages = max(1, -(-size // 100))
    # One page for the size, the pages, and one joining page per segment: ~3% more.
    assert fake.stats.requests <= pages + 1 + pages // 32


@pytest.mark.parametrize("concurrency", ["auto", 4])
async def test_page_mode_is_fetched_ahead_and_yielded_in_order(concurrency) -> None:
    async with FakeSendKit() as fake, fake.client() as client:
        emails = _seed(fake, 1_234)
        walked = await _walk(client, mode="page", concurrency=concurrency, limit=50)
    assert walked == emails


@pytest.mark.parametrize("order", ["oldest", "newest"])
@pytest.mark.parametrize("seed", range(6))
async def test_a_list_that_changes_during_the_walk_loses_nothing_that_stayed_and_repeats_nothing(
    seed, order
) -> None:
    rng = random.Random(seed)
    async with FakeSendKit(list_order=order, latency=0.002) as fake, fake.client() as client:
        emails = _seed(fake, 3_000)
        removed: set[str] = set()
        added: list[str] = []
        walked: list[str] = []
        async with contextlib.aclosing(client.dnc.pages(concurrency=8, prefetch=16)) as pages:
            async for page in pages:
                walked.extend(entry.email for entry in page.items)
                # Between pages: delete some anywhere (ahead of the walk and behind it) and add some.
                gone = rng.sample([e for e in emails if e not in removed], rng.randint(0, 40))
                fake.remove_dnc(gone)
                removed.update(gone)
                fresh = [f"new{seed}-{len(added) + n}@example.com" for n in range(rng.randint(0, 40))]
                fake.add_dnc(fresh)
                added.extend(fresh)
    assert len(walked) == len(set(walked)), "an entry came twice"
    stayed = set(emails) - removed
    assert stayed <= set(walked), f"{len(stayed - set(walked))} entries present throughout were missed"
    assert set(walked) <= set(emails) | set(added)


@pytest.mark.slow  # a slow reader over thousands of pages, in real time
async def test_memory_stays_within_the_prefetch_window_while_the_reader_is_slow() -> None:
    async with FakeSendKit() as fake, fake.client() as client:
        _seed(fake, 5_000)
        alive: weakref.WeakSet[DncPage] = weakref.WeakSet()

        async def fetch(**where):
            page = await dnc.get_page(client.session, **where)
            alive.add(page)
            return page

        seen = most = 0

        async def slow_reader(page: DncPage) -> None:
            nonlocal seen, most
            seen += len(page.items)
            del page
            for _ in range(20):  # a slow reader: every fetch that may run, runs
                await anyio.sleep(0.001)
            gc.collect(0)
            most = max(most, len(alive))

        await walk_cursor(fetch, slow_reader, limiter=FixedLimit(6), prefetch=10)
        assert seen == 5_000
        # The window, the heads of the segments in flight, and the fetches in flight.
        assert most <= 10 + 7 + 6


async def test_a_server_that_ignores_page_still_gets_every_entry_once() -> None:
    """Heads that come back as the first page are dropped; the first walk carries on alone."""
    async with FakeSendKit() as fake, fake.client() as client:
        emails = _seed(fake, 1_000)
        session = client.session

        async def fetch(*, page=None, cursor=None):
            del page  # ignored, as that server does
            return await dnc.get_page(session, cursor=cursor)

        walked = []

        async def read(page: DncPage) -> None:
            walked.extend(entry.email for entry in page.items)

        await walk_cursor(fetch, read, limiter=FixedLimit(8))
    assert walked == emails


async def test_bad_walk_settings_are_refused_before_sending() -> None:
    from sendkit_async import ValidationError  # noqa: PLC0415

    async with FakeSendKit() as fake, fake.client() as client:
        for kwargs in ({"concurrency": 0}, {"concurrency": "fast"}, {"prefetch": 0}):
            with pytest.raises(ValidationError):
                await _walk(client, **kwargs)
        assert fake.stats.requests == 0

"""The shared budget against a real redis-server, with real processes where processes matter."""

import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from sendkit_async import ConfigurationError, SendKit
from sendkit_async.budget import Lane, Observation, RedisBudget, Shape
from sendkit_async.testing import DEFAULT_WORKSPACE_KEY, FakeSendKit, virtual_clock
from sendkit_async.testing._limits import make_limiter

from .conftest import free_port
from .sim import redis_budget, simulate

ROOT = Path(__file__).parent.parent


async def worker(fake, redis_url, prefix, count):
    """Start ``python -m tests.redis_worker``; the returned process prints 'started', then its report."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.redis_worker",
        fake.url,
        redis_url,
        prefix,
        str(count),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )


async def report_of(process):
    assert await process.stdout.readline() == b"started\n"
    out, _ = await process.communicate()
    assert process.returncode == 0
    return json.loads(out.decode().strip().splitlines()[-1])


async def everything_in(client):
    """Every key and every value in the Redis database, as text, and every key's time to live."""
    texts, ttls = [], []
    async for key in client.scan_iter(count=1000):
        texts.append(key.decode())
        kind = (await client.type(key)).decode()
        if kind == "hash":
            texts += [f"{k.decode()}={v.decode()}" for k, v in (await client.hgetall(key)).items()]
        elif kind == "list":
            texts += [v.decode() for v in await client.lrange(key, 0, -1)]
        elif kind == "zset":
            texts += [v.decode() for v in await client.zrange(key, 0, -1)]
        elif kind == "string":
            texts.append((await client.get(key)).decode())
        ttls.append(await client.ttl(key))
    return texts, ttls


async def test_two_clients_on_one_key_share_what_the_budget_learns(redis_server):
    async with (
        FakeSendKit(rate_limit=50, rate_window=0.5) as fake,
        RedisBudget.from_url(redis_server.url) as first,
        RedisBudget.from_url(redis_server.url) as second,
        fake.client(rate_budget=first) as one,
        fake.client(rate_budget=second) as other,
    ):
        await one.dnc.get_page()
        await other.dnc.get_page()
        assert one.budget_snapshot().shape is Shape.HEADERS
        assert other.budget_snapshot().limit == 50


@pytest.mark.parametrize("stored", [b"not json", b'{"max_pause": "soon"}', b'{"share": 1}'])
async def test_a_learned_state_nobody_can_read_is_started_afresh_with_a_warning(redis_server, stored, caplog):
    async with (
        FakeSendKit(rate_limit=50, rate_window=0.5) as fake,
        RedisBudget.from_url(redis_server.url) as budget,
        fake.client(rate_budget=budget) as client,
    ):
        await client.dnc.get_page()
        store = aioredis.from_url(redis_server.url)
        try:
            [learner_key] = [key async for key in store.scan_iter(match="*:learner")]
            await store.set(learner_key, stored)
        finally:
            await store.aclose()
        with caplog.at_level(logging.WARNING, logger="sendkit_async"):
            await client.dnc.get_page()
            await client.dnc.get_page()
        assert client.budget_snapshot().limit == 50
        assert "learned state in Redis is unreadable" in caplog.text


async def test_a_429_seen_by_one_process_pauses_the_others(redis_server):
    async with (
        RedisBudget.from_url(redis_server.url) as first,
        RedisBudget.from_url(redis_server.url) as second,
    ):
        first.bind("k")
        second.bind("k")
        permit = await first.acquire(Lane.BULK)
        now = time.time()
        refused = Observation(429, sent_at=now, received_at=now, retry_at=now + 2)
        await first.observe(permit, refused)
        with anyio.move_on_after(0.3):
            await second.acquire(Lane.BULK)
            pytest.fail("the second process did not wait out the pause")
        assert second.snapshot().paused_for > 1.5


async def test_the_key_never_appears_in_redis_and_every_key_expires(redis_server):
    async with (
        FakeSendKit(rate_limit=100) as fake,
        RedisBudget.from_url(redis_server.url) as budget,
        fake.client(rate_budget=budget) as client,
    ):
        await client.dnc.import_bulk([f"u{i}@example.com" for i in range(500)], batch_size=100)
        async with aioredis.Redis.from_url(redis_server.url) as inspector:
            texts, ttls = await everything_in(inspector)
    assert texts
    joined = "\n".join(texts)
    for secret in (fake.api_key, fake.api_key.removeprefix("sk_"), "fake_workspace_key"):
        assert secret not in joined
    assert all(0 < ttl <= 3600 for ttl in ttls)


@pytest.mark.parametrize("processes", [2, 4])
async def test_processes_on_one_key_stay_under_the_limit_together(redis_server, processes):
    # 40 requests/s in all; each process sends 20 batches of 100.
    async with FakeSendKit(rate_limit=20, rate_window=0.5, latency=0.02) as fake:
        workers = [await worker(fake, redis_server.url, f"p{n}-", 2000) for n in range(processes)]
        reports = [await report_of(w) for w in workers]
        stored = len(fake.dnc_emails())
        rate_limited = fake.stats.rate_limited
    requests = 20 * processes
    assert stored == 2000 * processes
    assert all(r["balanced"] for r in reports)
    assert all(r["imported"] == 2000 for r in reports)
    assert all(r["shared_at_end"] for r in reports)
    assert rate_limited <= 3
    # Real processes in real time: how fast is bench_shared's figure (no real-time bound here);
    # the virtual-time tests below pin the time a process may wait.
    assert fake.stats.requests >= requests


async def test_a_process_killed_mid_job_does_not_starve_the_others(redis_server):
    async with FakeSendKit(rate_limit=20, rate_window=0.5, latency=0.02) as fake:
        doomed = await worker(fake, redis_server.url, "doomed-", 100_000)
        survivor = await worker(fake, redis_server.url, "survivor-", 3000)
        assert await doomed.stdout.readline() == b"started\n"
        await asyncio.sleep(0.5)
        doomed.send_signal(signal.SIGKILL)
        await doomed.wait()
        report = await report_of(survivor)
    # How long its share takes to lapse is pinned in virtual time (the next test).
    assert report["imported"] == 3000
    assert report["balanced"]


@pytest.mark.virtual_time
async def test_a_permit_left_by_a_dead_process_lapses_after_in_flight_ttl(redis_server):
    """Virtual time: another process took the opening's one slot in flight and died (``kill -9``)."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        clock = virtual_clock()
        doomed = redis_budget(client, clock, prefix="dead", in_flight_ttl=2.0)
        survivor = redis_budget(client, clock, prefix="dead", in_flight_ttl=2.0)
        await doomed.acquire(Lane.BULK)  # never answered: its process is gone
        started = clock.monotonic()
        run = await simulate(
            make_limiter("token", 20, 1.0, start=clock.wall()),
            requests=30,
            workers=8,
            latency=0.02,
            budget=survivor,
            clock=clock,
        )
    finally:
        await client.aclose()
    assert run.done == 30
    first_send = run.sends[0] - started
    assert 2.0 <= first_send <= 2.0 + 0.1  # the dead permit held the slot until its TTL, no longer
    assert run.elapsed <= 2.0 + 1.25 * (30 / 20 + 0.02)


async def test_when_redis_goes_away_every_process_finishes_on_its_local_budget(redis_server):
    async with FakeSendKit(rate_limit=20, rate_window=0.5, latency=0.02) as fake:
        workers = [await worker(fake, redis_server.url, f"w{n}-", 3000) for n in range(2)]
        for process in workers:
            assert await process.stdout.readline() == b"started\n"
        await asyncio.sleep(0.3)
        redis_server.kill()
        reports = []
        for process in workers:
            out, _ = await process.communicate()
            assert process.returncode == 0
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
        stored = fake.dnc_emails()
    assert all(r["balanced"] and r["read"] == 3000 and r["failed"] == 0 for r in reports)
    assert all(not r["shared_at_end"] for r in reports)
    assert len(stored) == 6000


@pytest.mark.virtual_time
async def test_an_interactive_call_in_one_process_goes_ahead_of_another_processes_import(redis_server):
    """Two processes' budgets on one key, in virtual time (the Redis calls are real; the clock waits)."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        clock = virtual_clock()
        importer = redis_budget(client, clock, prefix="lanes")
        web = redis_budget(client, clock, prefix="lanes")  # another process on the same key
        run = await simulate(
            make_limiter("fixed", 10, 1.0, start=clock.wall()),
            requests=200,
            workers=16,
            budget=importer,
            clock=clock,
            interactive_every=0.73,
            interactive_budget=web,
        )
    finally:
        await client.aclose()
    waits = run.finished["interactive"]
    assert len(waits) > 10
    interval = 1.0 / 10
    # The first may come after the import sent a window's quota at its start (before the other
    # process heard of interactive callers): it waits for the next window. From then on the budget
    # spreads sends and interactive calls go first, not behind sixteen queued batches.
    assert waits[0] <= 1.0 + interval
    assert max(waits[1:]) <= 2.5 * interval
    assert run.rate_limited <= 0.02 * run.requests


async def test_every_call_of_two_processes_on_one_key_books_its_slot_in_the_shared_budget(redis_server):
    async with (
        FakeSendKit(rate_limit=10, rate_window=0.5, latency=0.02) as fake,
        RedisBudget.from_url(redis_server.url) as bulk_budget,
        RedisBudget.from_url(redis_server.url) as web_budget,
        fake.client(rate_budget=bulk_budget) as importer,
        fake.client(rate_budget=web_budget) as web,
    ):

        async def handler_calls():
            await anyio.sleep(0.5)
            for _ in range(4):
                await web.dnc.get_page()
                await anyio.sleep(0.27)

        async with anyio.create_task_group() as group:
            group.start_soon(handler_calls)
            report = await importer.dnc.import_bulk(
                [f"i{i}@example.com" for i in range(3000)], batch_size=100
            )
        async with aioredis.Redis.from_url(redis_server.url) as probe:
            [state] = [key async for key in probe.scan_iter(match="*:state")]
            booked = int(await probe.hget(state, "seq"))
    assert report.imported == 3000
    assert booked == fake.stats.requests  # the handler's calls took their slots from the shared budget


async def test_an_unreachable_redis_fails_open_with_one_warning(caplog):
    caplog.set_level(logging.WARNING, logger="sendkit_async")
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        FakeSendKit(rate_limit=50) as fake,
        RedisBudget.from_url(url, timeout=0.1) as budget,
        fake.client(rate_budget=budget) as client,
    ):
        report = await client.dnc.import_bulk([f"u{i}@example.com" for i in range(1000)], batch_size=100)
    assert report.imported == 1000
    assert not budget.shared
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize("setting", [{"timeout": 0}, {"timeout": float("inf")}, {"retry_every": -1}])
async def test_impossible_settings_are_refused(setting, redis_server):
    with pytest.raises(ValueError):  # noqa: PT011
        RedisBudget.from_url(redis_server.url, **setting)


async def test_acquire_before_bind_is_a_clear_error(redis_server):
    async with RedisBudget.from_url(redis_server.url) as budget:
        with pytest.raises(ConfigurationError, match="bind"):
            await budget.acquire()


def test_the_sdk_client_binds_the_budget_to_a_fingerprint_of_its_key(redis_server):
    budget = RedisBudget.from_url(redis_server.url)
    SendKit(api_key=DEFAULT_WORKSPACE_KEY, rate_budget=budget)
    keys = budget._shared.keys
    assert keys
    assert all(DEFAULT_WORKSPACE_KEY not in key for key in keys)


async def test_the_budget_rejoins_redis_once_it_answers_again(tmp_path):
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH")
    port = free_port()
    async with RedisBudget.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.1, retry_every=0.2) as budget:
        budget.bind("k")
        now = time.time()
        permit = await budget.acquire(Lane.BULK)
        assert not budget.shared  # nobody listens on that port yet
        await budget.observe(permit, Observation(200, sent_at=now, received_at=now))
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
        server = await anyio.open_process(argv, stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                await anyio.sleep(0.05)
                permit = await budget.acquire(Lane.BULK)
                await budget.observe(permit, Observation(200, sent_at=time.time(), received_at=time.time()))
                if budget.shared:
                    break
            assert budget.shared
        finally:
            server.terminate()
            await server.wait()


async def test_a_caller_cancelled_in_its_reserved_wait_frees_its_place_in_flight(redis_server):
    """An interactive caller reserves the next slot and sleeps until it; cancelled (or past its
    max_queue_wait) there, it must not hold a place in flight until the place's TTL runs out."""
    async with RedisBudget.from_url(redis_server.url) as budget:
        budget.bind("k")
        permit = await budget.acquire(Lane.BULK)
        now = time.time()
        await budget.observe(permit, Observation(429, sent_at=now, received_at=now, retry_at=now + 2))
        with anyio.move_on_after(0.2) as waited:
            await budget.acquire(Lane.INTERACTIVE)
        assert waited.cancelled_caught
        async with aioredis.Redis.from_url(redis_server.url) as probe:
            places = [await probe.zcard(key) async for key in probe.scan_iter(match="*:flight")]
        assert sum(places) == 0  # (an empty set is no key at all)

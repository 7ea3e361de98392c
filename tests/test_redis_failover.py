"""A job's checkpoint through failovers, freezes and lost data, on real Sentinel groups and clusters.

Each test builds its own group (a failover changes it for good) and runs a
job of 200 batches through it while the fault happens; then it checks the
store's records against what the fake server really received.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator

import anyio
import pytest
import redis.asyncio as aioredis

from sendkit_async import ImportReport
from sendkit_async._redis_url import close, connect
from sendkit_async.bulk import CheckpointLostError, ImportAbortedError, JobLeaseLostError, RedisCheckpoints
from sendkit_async.testing import FakeSendKit

from .conftest import RedisGroup, redis_port, spawn_cluster, spawn_redis, spawn_sentinel_group, stop_redis
from .test_bulk import distinct_valid

ENTRIES = list(distinct_valid(20_000))
BATCHES = 200
IMPORTS = "POST /v1/dnc/import"


@pytest.fixture
def sentinel_group(tmp_path) -> Iterator[RedisGroup]:
    group = spawn_sentinel_group(tmp_path)
    yield group
    group.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[RedisGroup]:
    """One cluster for the module: each test's job lives in its own slot (a failover moves only its own)."""
    group = spawn_cluster(tmp_path_factory.mktemp("cluster"))
    yield group
    group.stop()


async def _sentinel_knows_the_replica(group: RedisGroup) -> aioredis.Redis:
    sentinel = aioredis.Redis.from_url(group.servers[2].url)
    deadline = time.monotonic() + 20
    while not await sentinel.execute_command("SENTINEL", "REPLICAS", "mymaster"):
        assert time.monotonic() < deadline, "the Sentinels never saw the replica"
        await anyio.sleep(0.1)
    return sentinel


async def _records(url: str, job: str) -> set[int]:
    client = connect(url, timeout=2.0)
    try:
        fields = await client.hkeys(f"sendkit:job:{{{job}}}:batches")
    finally:
        await close(client)
    return {int(field) for field in fields}


async def _run(fake: FakeSendKit, store: RedisCheckpoints, job: str, on_progress) -> ImportReport:
    """The job to its end; a lost lease is an end too (the report says what landed)."""
    async with fake.client() as client:
        try:
            return await client.dnc.import_bulk(
                ENTRIES, batch_size=100, concurrency=4, checkpoint=store, job=job, on_progress=on_progress
            )
        except ImportAbortedError as exc:
            stopped = exc
    assert isinstance(stopped.__cause__, JobLeaseLostError), stopped.__cause__
    assert stopped.report is not None
    return stopped.report


def _completed(report: ImportReport) -> bool:
    return report.balanced and not report.failed and report.imported == len(ENTRIES)


async def _assert_nothing_lost_nor_sent_twice(url: str, fake: FakeSendKit, job: str, report: ImportReport):
    """A completed job keeps every record; a stopped one leaves a rerun only what it had not confirmed."""
    completed = _completed(report)
    if completed:
        assert await _records(url, job) == set(range(BATCHES))
    sent_before = fake.stats.by_route[IMPORTS]
    async with RedisCheckpoints.from_url(url, lease_ttl=8) as store:
        rerun = await _run(fake, store, job, None)
    assert rerun.balanced
    assert await _records(url, job) == set(range(BATCHES))
    if completed:  # the rerun sends nothing
        assert fake.stats.by_route[IMPORTS] == sent_before
    # One send per batch, plus at most those in flight or unconfirmed when a run stopped.
    assert fake.stats.by_route[IMPORTS] <= BATCHES + 8
    assert len(fake.dnc_emails()) == len(ENTRIES)


async def test_a_sentinel_failover_mid_job_loses_no_record_and_never_runs_the_job_twice(sentinel_group):
    """``SENTINEL FAILOVER``: the demoted master cannot confirm a write, so nothing is counted on it alone.

    A second worker waits for the job all along; it must never send while
    the first one does (the first run's last request ends before its first).
    """
    sentinel = await _sentinel_knows_the_replica(sentinel_group)
    job = "sentinel-failover"
    async with FakeSendKit(latency=0.02) as fake, RedisCheckpoints.from_url(sentinel_group.url) as store:

        async def failover(progress) -> None:
            if progress.batches == 20:
                await sentinel.execute_command("SENTINEL", "FAILOVER", "mymaster")

        first = await _run(fake, store, job, failover)
        assert _completed(first)  # the job followed the promotion within its lease
        await sentinel.aclose()
        await _assert_nothing_lost_nor_sent_twice(sentinel_group.url, fake, job, first)


async def test_a_second_worker_never_sends_while_the_first_holds_the_job_through_a_failover(sentinel_group):
    sentinel = await _sentinel_knows_the_replica(sentinel_group)
    job = "sentinel-two-workers"
    spans: dict[str, list[float]] = {"first": [], "second": []}
    async with FakeSendKit(latency=0.02) as fake:

        async def worker(name: str, delay: float) -> None:
            await anyio.sleep(delay)

            def seen(progress) -> None:
                spans[name].append(time.monotonic())
                if name == "first" and progress.batches == 20:
                    tasks.start_soon(sentinel.execute_command, "SENTINEL", "FAILOVER", "mymaster")

            async with RedisCheckpoints.from_url(sentinel_group.url) as store, fake.client() as client:
                with contextlib.suppress(ImportAbortedError):  # a lost lease; the spans tell the rest
                    await client.dnc.import_bulk(
                        ENTRIES,
                        batch_size=100,
                        concurrency=4,
                        checkpoint=store,
                        job=job,
                        on_progress=seen,
                        lease_wait=60,
                    )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(worker, "first", 0)
            tasks.start_soon(worker, "second", 0.3)
    await sentinel.aclose()
    assert spans["first"]
    if spans["second"]:  # the second took over only after the first had stopped
        assert min(spans["second"]) > max(spans["first"])
    assert fake.stats.by_route[IMPORTS] <= BATCHES + 4
    assert await _records(sentinel_group.url, job) == set(range(BATCHES))


async def test_a_killed_master_costs_the_job_time_not_its_life(sentinel_group):
    """The master dies; Sentinel promotes the replica in a few seconds; writes wait within the lease."""
    await (await _sentinel_knows_the_replica(sentinel_group)).aclose()
    job = "sentinel-kill"
    master = sentinel_group.servers[0]
    async with (
        FakeSendKit(latency=0.02) as fake,
        RedisCheckpoints.from_url(sentinel_group.url, lease_ttl=10) as store,
    ):

        def kill(progress) -> None:
            if progress.batches == 20:
                master.kill()

        report = await _run(fake, store, job, kill)
    assert report.balanced
    assert not report.failed, report.failed[:3]
    assert report.imported == len(ENTRIES)
    assert await _records(sentinel_group.url, job) == set(range(BATCHES))


async def test_data_lost_in_a_restart_stops_the_job_with_a_typed_error_and_a_rerun_accounts(redis_server):
    """``FLUSHALL`` mid-job, as a restart without persistence: the lease and the header are gone."""
    job = "flushed"
    async with (
        FakeSendKit(latency=0.02) as fake,
        RedisCheckpoints.from_url(redis_server.url, lease_ttl=1.5) as store,
        aioredis.Redis.from_url(redis_server.url) as admin,
        fake.client() as client,
    ):

        async def flush(progress) -> None:
            if progress.batches == 20:
                await admin.flushall()

        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(
                ENTRIES, batch_size=100, concurrency=4, checkpoint=store, job=job, on_progress=flush
            )
        assert isinstance(caught.value.__cause__, CheckpointLostError)
        assert "lost the job's lease and checkpoint" in str(caught.value)
        first = caught.value.report
        assert first is not None
        assert first.balanced
        rerun = await client.dnc.import_bulk(
            ENTRIES, batch_size=100, concurrency=4, checkpoint=store, job=job
        )
    assert rerun.balanced
    assert rerun.resumed_batches == 0  # nothing survived to resume from: the job starts over
    assert rerun.imported + rerun.skipped == len(ENTRIES)
    assert len(fake.dnc_emails()) == len(ENTRIES)


async def test_a_real_restart_that_lost_the_data_stops_the_job_and_a_rerun_accounts(tmp_path):
    """The server killed mid-job and started again on its port, empty (no persistence)."""
    server = spawn_redis(tmp_path / "first")
    port = redis_port(server.url)
    restarted = []
    try:
        async with (
            FakeSendKit(latency=0.02) as fake,
            RedisCheckpoints.from_url(server.url, lease_ttl=1.5) as store,
            fake.client() as client,
        ):

            async def restart(progress) -> None:
                if progress.batches == 20 and not restarted:
                    server.kill()
                    restarted.append(
                        await anyio.to_thread.run_sync(
                            functools.partial(spawn_redis, tmp_path / "second", port=port)
                        )
                    )

            with pytest.raises(ImportAbortedError) as caught:
                await client.dnc.import_bulk(
                    ENTRIES,
                    batch_size=100,
                    concurrency=4,
                    checkpoint=store,
                    job="restarted",
                    on_progress=restart,
                )
            assert isinstance(caught.value.__cause__, CheckpointLostError)
            first = caught.value.report
            assert first is not None
            assert first.balanced
            assert first.read < len(ENTRIES)  # it stopped, rather than carrying on unrecorded
            rerun = await client.dnc.import_bulk(
                ENTRIES, batch_size=100, concurrency=4, checkpoint=store, job="restarted"
            )
        assert rerun.balanced
        assert rerun.imported + rerun.skipped == len(ENTRIES)
        assert len(fake.dnc_emails()) == len(ENTRIES)
    finally:
        for each in (server, *restarted):
            stop_redis(each)


@pytest.mark.parametrize(("freeze", "survives"), [(0.6, True), (3.5, False)])
async def test_a_frozen_cluster_node_costs_time_or_ends_the_job_with_a_report(cluster, freeze, survives):
    """``CLIENT PAUSE`` on the job's node under a 2.4 s lease: shorter survives, longer stops, typed."""
    job = f"frozen-{survives}"
    async with (
        FakeSendKit(latency=0.02) as fake,
        RedisCheckpoints.from_url(cluster.url, lease_ttl=2.4) as store,
    ):
        await store._redis.initialize()
        node = store._redis.get_node_from_key(f"sendkit:job:{{{job}}}:lease")
        admin = aioredis.Redis(host=node.host, port=node.port)

        async def pause(progress) -> None:
            if progress.batches == 20:
                await admin.execute_command("CLIENT", "PAUSE", str(int(freeze * 1000)), "ALL")

        report = await _run(fake, store, job, pause)
        assert report.balanced
        assert _completed(report) is survives
        await admin.aclose()


async def test_a_cluster_failover_mid_job_keeps_every_record(cluster):
    """``CLUSTER FAILOVER`` on the replica of the job's master: the client follows, the records stay."""
    job = "cluster-failover"
    async with FakeSendKit(latency=0.02) as fake, RedisCheckpoints.from_url(cluster.url) as store:
        await store._redis.initialize()
        node = store._redis.get_node_from_key(f"sendkit:job:{{{job}}}:lease")
        master = aioredis.Redis(host=node.host, port=node.port)
        replica_port = int((await master.execute_command("ROLE"))[2][0][1])
        replica = aioredis.Redis(host=node.host, port=replica_port)

        async def failover(progress) -> None:
            if progress.batches == 20:
                await replica.execute_command("CLUSTER", "FAILOVER")

        first = await _run(fake, store, job, failover)
        assert _completed(first)
        await master.aclose()
        await replica.aclose()
        await _assert_nothing_lost_nor_sent_twice(cluster.url, fake, job, first)


async def test_the_lease_is_renewed_every_third_and_lost_only_a_whole_lease_after_the_last_renewal(
    redis_server,
):
    """In virtual time: renewals every ttl/3; with Redis gone, the keeper gives up at ttl, not before."""
    from datetime import datetime, timezone  # noqa: PLC0415

    from sendkit_async.bulk import Holder  # noqa: PLC0415
    from sendkit_async.testing import FakeClock  # noqa: PLC0415

    clock = FakeClock(auto_advance=False)
    key = "sendkit:job:{renewed}:lease"
    async with (
        RedisCheckpoints.from_url(redis_server.url, lease_ttl=6) as store,
        aioredis.Redis.from_url(redis_server.url) as admin,
    ):
        job = store.job("renewed")
        await job.claim(Holder("here", 1, datetime.now(timezone.utc), "t"), wait=0, clock=clock)
        await admin.pexpire(key, 100_000)  # a renewal will bring it back to 6 s
        outcome: list[BaseException] = []

        async def keep() -> None:
            try:
                await job.keep()
            except JobLeaseLostError as exc:
                outcome.append(exc)

        async def step(seconds: float) -> None:
            clock.advance(seconds)
            await anyio.sleep(0.005)
            while clock.waiting == 0 and not outcome:  # noqa: ASYNC110 - a renewal's real round trip is out
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as group:
            group.start_soon(keep)
            await step(0)  # the keeper starts its first wait
            await step(1.9)
            assert await admin.pttl(key) > 10_000  # not yet a third of the lease
            await step(0.1)
            assert await admin.pttl(key) <= 6_000  # renewed at ttl/3
            redis_server.kill()
            elapsed = 0.0  # since the last renewal was sent (at t=2)
            while not outcome and elapsed < 10:
                await step(0.25)
                elapsed += 0.25
            group.cancel_scope.cancel()
    assert outcome, "the keeper never gave up"
    assert 6.0 <= elapsed <= 6.5
    assert "within its 6 s" in str(outcome[0])


class Recording:
    """A transport noting when each attempt of one worker left (the workers share this process's clock)."""

    def __init__(self) -> None:
        from sendkit_async.transport import AiohttpTransport  # noqa: PLC0415

        self.wire = AiohttpTransport()
        self.sent: list[float] = []

    async def send(self, request):
        if request.url.path == "/v1/dnc/import":
            self.sent.append(time.monotonic())
        return await self.wire.send(request)

    async def aclose(self) -> None:
        await self.wire.aclose()


RUNS = int(__import__("os").environ.get("SENDKIT_FAILOVER_RUNS", "2"))


@pytest.mark.parametrize("run", range(RUNS))
async def test_a_second_worker_started_at_a_sentinel_failover_never_sends_while_the_first_does(
    sentinel_group, run
) -> None:
    """The fault and the second worker at once: it waits (lease_wait) and never takes the demoted master."""
    del run
    sentinel = await _sentinel_knows_the_replica(sentinel_group)
    job = "failover-at-the-fault"
    wires = {"first": Recording(), "second": Recording()}
    reports: dict[str, ImportReport] = {}
    async with FakeSendKit(latency=0.02) as fake:

        async def worker(name: str) -> None:
            async with (
                RedisCheckpoints.from_url(sentinel_group.url) as store,
                fake.client(transport=wires[name]) as client,
            ):
                try:
                    reports[name] = await client.dnc.import_bulk(
                        ENTRIES,
                        batch_size=100,
                        concurrency=4,
                        checkpoint=store,
                        job=job,
                        lease_wait=60,
                        on_progress=at_the_fault if name == "first" else None,
                    )
                except ImportAbortedError as exc:  # a lost lease: its report says what landed
                    stopped = exc
                    reports[name] = stopped.report
                    assert isinstance(stopped.__cause__, JobLeaseLostError), stopped.__cause__

        async def at_the_fault(progress) -> None:
            if progress.batches == 40:
                tasks.start_soon(sentinel.execute_command, "SENTINEL", "FAILOVER", "mymaster")
                tasks.start_soon(worker, "second")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(worker, "first")
        await sentinel.aclose()
        first, second = wires["first"].sent, wires["second"].sent
        assert first
        if second:  # never two senders at once: the second's first send after the first's last
            assert min(second) > max(first)
        assert fake.stats.by_route[IMPORTS] == BATCHES  # no batch sent twice
        assert len(fake.dnc_emails()) == len(ENTRIES)  # everything stored
        assert all(report.balanced for report in reports.values())
        assert reports["second"].imported == len(ENTRIES)  # what it resumed and what it sent: the whole job
        await _assert_nothing_lost_nor_sent_twice(sentinel_group.url, fake, job, reports["second"])


@pytest.mark.parametrize("down_after_ms", [1000, 5000])
async def test_a_master_killed_mid_job_costs_time_or_a_typed_stop_and_the_report_equals_the_server(
    tmp_path, down_after_ms
) -> None:
    group = spawn_sentinel_group(tmp_path, down_after_ms=down_after_ms)
    try:
        await (await _sentinel_knows_the_replica(group)).aclose()
        master = group.servers[0]
        async with FakeSendKit(latency=0.02) as fake, RedisCheckpoints.from_url(group.url) as store:

            def kill(progress) -> None:
                if progress.batches == 40:
                    master.kill()

            report = await _run(fake, store, "killed", kill)
            assert report.balanced
            assert report.requests == fake.stats.by_route[IMPORTS]
            stored = fake.dnc_emails()
            assert report.imported == len(stored)
            assert not {failure.email for failure in report.failed} & stored
            if report.stopped_at is not None:  # stopped typed: the rerun (when Redis is back) finishes it
                async with RedisCheckpoints.from_url(group.url, lease_ttl=8) as again:
                    rerun = await _run(fake, again, "killed", None)
                assert rerun.balanced
            assert len(fake.dnc_emails()) == len(ENTRIES) or report.stopped_at is not None
    finally:
        group.stop()


async def test_a_second_worker_started_at_a_killed_master_waits_through_it_with_lease_wait(tmp_path) -> None:
    """``kill -9`` of the master, and a second worker at that moment: it waits (never 'Error 111')."""
    group = spawn_sentinel_group(tmp_path, down_after_ms=1000)
    try:
        sentinel = await _sentinel_knows_the_replica(group)
        await sentinel.aclose()
        wires = {"first": Recording(), "second": Recording()}
        reports: dict[str, ImportReport] = {}
        async with FakeSendKit(latency=0.02) as fake:

            async def worker(name: str) -> None:
                async with (
                    RedisCheckpoints.from_url(group.url, lease_ttl=10) as store,
                    fake.client(transport=wires[name]) as client,
                ):
                    try:
                        reports[name] = await client.dnc.import_bulk(
                            ENTRIES,
                            batch_size=100,
                            concurrency=4,
                            checkpoint=store,
                            job="killed-two",
                            lease_wait=60,
                            on_progress=at_the_kill if name == "first" else None,
                        )
                    except ImportAbortedError as exc:
                        stopped = exc
                        reports[name] = stopped.report
                        assert isinstance(stopped.__cause__, JobLeaseLostError), stopped.__cause__

            def at_the_kill(progress) -> None:
                if progress.batches == 40:
                    group.servers[0].kill()
                    tasks.start_soon(worker, "second")

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(worker, "first")
            first, second = wires["first"].sent, wires["second"].sent
            if second:
                assert min(second) > max(first)
            assert set(reports) == {"first", "second"}  # the second waited and ended, it did not fail
            assert reports["second"].imported + reports["second"].skipped == len(ENTRIES)
            assert len(fake.dnc_emails()) == len(ENTRIES)
    finally:
        group.stop()

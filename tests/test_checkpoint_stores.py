"""Checkpoint stores: a file and Redis keep the same job the same way, and a lease keeps it to one run."""

import json
import math
import os
import socket
import sys
from datetime import datetime, timedelta, timezone

import anyio
import pytest
import redis as sync_redis

from sendkit_async import ValidationError
from sendkit_async._clock import SystemClock
from sendkit_async.bulk import (
    CheckpointMismatchError,
    CheckpointUnavailableError,
    FailureKind,
    Holder,
    ImportAbortedError,
    ImportOptions,
    JobLeaseHeldError,
    JobLeaseLostError,
    RedisCheckpoints,
)
from sendkit_async.testing import DEFAULT_WORKSPACE_ID, FakeSendKit

from .conftest import free_port
from .test_bulk import distinct_valid


class FileSpot:
    """Jobs kept as checkpoint files in one directory."""

    kind = "file"

    def __init__(self, directory):
        self.directory = directory

    def args(self, job):
        return {"checkpoint": self.directory / f"{job}.ckpt"}

    def stored(self):
        return b"".join(path.read_bytes() for path in self.directory.iterdir() if path.is_file())

    def holding(self, job):
        return (self.directory / f"{job}.ckpt.lock").exists()


class RedisSpot:
    """Jobs kept in a real redis-server, named by a URL (or a RedisCheckpoints object)."""

    kind = "redis"

    def __init__(self, url):
        self.url = url
        self.client = sync_redis.Redis.from_url(url)

    def args(self, job):
        return {"checkpoint": self.url, "job": job}

    def stored(self):
        chunks = []
        for key in self.client.scan_iter("*"):
            chunks.append(key)
            kind = self.client.type(key)
            if kind == b"string":
                chunks.append(self.client.get(key))
            elif kind == b"hash":
                chunks.extend(b"".join(pair) for pair in self.client.hgetall(key).items())
        return b"".join(chunks)

    def holding(self, job):
        return self.client.exists(f"sendkit:job:{{{job}}}:lease") == 1


@pytest.fixture(params=["file", "redis"])
def spot(request, tmp_path):
    if request.param == "file":
        yield FileSpot(tmp_path)
        return
    server = request.getfixturevalue("redis_server")
    redis_spot = RedisSpot(server.url)
    yield redis_spot
    redis_spot.client.close()


async def test_a_stopped_job_resumes_where_it_stopped_and_sends_no_landed_batch_again(spot):
    entries = list(distinct_valid(12_000, bad_every=1_000, repeat_every=500))
    async with FakeSendKit(latency=0.01) as fake, fake.client() as client:
        with anyio.CancelScope() as scope:

            def stop_after_three(progress):
                if progress.batches >= 3:
                    scope.cancel()

            await client.dnc.import_bulk(
                entries, batch_size=1_000, on_progress=stop_after_three, **spot.args("contacts")
            )
        assert scope.cancelled_caught
        assert not spot.holding("contacts")  # a stopped run lets go of its lease
        received = fake.stats.entries_received

        report = await client.dnc.import_bulk(entries, batch_size=1_000, **spot.args("contacts"))
        resent = fake.stats.entries_received - received
    assert fake.dnc_emails() == {f"user{i}@example.com" for i in range(12_000)}
    assert report.balanced
    assert report.read == len(entries)
    assert report.resumed_batches >= 3
    assert report.imported + report.skipped == 12_000
    assert resent <= 12_000 - report.resumed_batches * 1_000


async def test_other_input_settings_or_account_are_refused_before_anything_is_sent(spot):
    async with FakeSendKit() as fake, fake.client() as client:
        await client.dnc.import_bulk(distinct_valid(300), batch_size=100, **spot.args("job"))
        sent = fake.stats.requests
        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(
                [f"other{i}@example.com" for i in range(300)], batch_size=100, **spot.args("job")
            )
        assert isinstance(caught.value.__cause__, CheckpointMismatchError)
        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(distinct_valid(300), batch_size=50, **spot.args("job"))
        assert "other settings" in str(caught.value.__cause__)
        other_key = fake.api_key + "2"
        fake.workspace_keys[other_key] = DEFAULT_WORKSPACE_ID
        async with fake.client(api_key=other_key) as other_account:
            with pytest.raises(ImportAbortedError) as caught:
                await other_account.dnc.import_bulk(distinct_valid(300), batch_size=100, **spot.args("job"))
        assert isinstance(caught.value.__cause__, CheckpointMismatchError)
        # The first batch of other input differs from the record; later ones never go.
        assert fake.stats.requests == sent
        assert not spot.holding("job")


async def test_a_second_run_of_a_running_job_is_refused_and_names_the_holder(spot):
    async with FakeSendKit(latency=0.05) as fake, fake.client() as client:
        landed = anyio.Event()
        async with anyio.create_task_group() as group:

            async def first():
                await client.dnc.import_bulk(
                    distinct_valid(4_000),
                    batch_size=100,
                    concurrency=2,
                    on_progress=lambda _: landed.set(),
                    **spot.args("nightly"),
                )

            group.start_soon(first)
            await landed.wait()
            assert spot.holding("nightly")
            requests = fake.stats.requests
            with pytest.raises(ImportAbortedError) as caught:
                await client.dnc.import_bulk(distinct_valid(4_000), batch_size=100, **spot.args("nightly"))
            group.cancel_scope.cancel()
    held = caught.value.__cause__
    assert isinstance(held, JobLeaseHeldError)
    assert (held.holder.host, held.holder.pid) == (socket.gethostname(), os.getpid())
    assert abs(datetime.now(timezone.utc) - held.holder.started) < timedelta(seconds=30)
    assert socket.gethostname() in str(held)
    assert "since" in str(held)
    assert caught.value.report.read == 0  # the second run read and sent nothing
    assert fake.stats.requests - requests <= 2  # only the first run's batches in flight went on


async def test_a_waiting_run_takes_the_job_over_when_the_holder_stops(spot):
    async with FakeSendKit(latency=0.02) as fake, fake.client() as client:
        three = anyio.Event()
        async with anyio.create_task_group() as group:
            first_scope = anyio.CancelScope()

            async def first():
                with first_scope:
                    await client.dnc.import_bulk(
                        distinct_valid(3_000),
                        batch_size=100,
                        concurrency=1,
                        on_progress=lambda p: p.batches >= 3 and three.set(),
                        **spot.args("handover"),
                    )

            group.start_soon(first)
            await three.wait()
            reports = []

            async def second():
                reports.append(
                    await client.dnc.import_bulk(
                        distinct_valid(3_000), batch_size=100, lease_wait=30, **spot.args("handover")
                    )
                )

            group.start_soon(second)
            await anyio.sleep(0.3)  # the second is waiting on the lease
            assert not reports
            first_scope.cancel()
    [report] = reports
    assert report.resumed_batches >= 3
    assert report.balanced
    assert fake.dnc_emails() == {f"user{i}@example.com" for i in range(3_000)}


async def test_the_store_never_holds_the_key(spot):
    async with FakeSendKit(reject=lambda e: "policy" if e.startswith("user1") else None) as fake:
        async with fake.client() as client:
            await client.dnc.import_bulk(distinct_valid(500, bad_every=50), batch_size=100, **spot.args("k"))
        key = fake.api_key
    stored = spot.stored()
    assert stored  # something was written
    assert key.encode() not in stored
    assert key.split("_")[-1].encode() not in stored


async def test_a_completed_job_lets_go_of_its_lease_and_its_records_expire(spot):
    async with FakeSendKit() as fake, fake.client() as client:
        await client.dnc.import_bulk(distinct_valid(300), batch_size=100, **spot.args("done"))
        again = await client.dnc.import_bulk(distinct_valid(300), batch_size=100, **spot.args("done"))
    assert not spot.holding("done")
    assert again.resumed_batches == 3  # nothing is sent again within the records' lifetime
    if spot.kind == "redis":
        for name in ("header", "batches"):
            ttl = spot.client.ttl(f"sendkit:job:{{done}}:{name}")
            assert 6 * 86_400 < ttl <= 7 * 86_400


async def import_until_stopped(url, job, *, at_batch, then):
    """Import 5,000 entries as a Redis job, calling ``then()`` once ``at_batch`` batches landed.

    Returns the error that stopped the job, and the fake server.
    """
    async with (
        RedisCheckpoints.from_url(url, lease_ttl=0.6) as store,
        FakeSendKit(latency=0.05) as fake,
        fake.client() as client,
    ):

        def act(progress):
            if progress.batches == at_batch:
                then()

        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(
                distinct_valid(5_000),
                batch_size=100,
                concurrency=2,
                on_progress=act,
                checkpoint=store,
                job=job,
            )
    return caught.value, fake


async def test_a_run_that_loses_its_lease_stops_and_accounts_for_everything(redis_server):
    client_redis = sync_redis.Redis.from_url(redis_server.url)
    stolen = json.dumps({"host": "elsewhere", "pid": 7, "started": "2026-01-01T00:00:00+00:00", "token": "x"})

    def steal():
        client_redis.set("sendkit:job:{stolen}:lease", stolen, px=60_000)

    stopped, fake = await import_until_stopped(redis_server.url, "stolen", at_batch=2, then=steal)
    client_redis.close()
    assert isinstance(stopped.__cause__, JobLeaseLostError)
    assert_accounted(stopped.report, fake)


def assert_accounted(report, fake):
    """Every entry is in the report; what landed is imported, or was in flight at the stop."""
    assert report.balanced
    in_flight = [f for f in report.failed if f.kind is FailureKind.INTERRUPTED]
    assert report.imported <= len(fake.dnc_emails()) <= report.imported + len(in_flight)


async def test_an_unreachable_store_stops_the_job_before_anything_is_sent():
    async with FakeSendKit() as fake, fake.client() as client:
        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(
                distinct_valid(100), checkpoint=f"redis://127.0.0.1:{free_port()}/0", job="nowhere"
            )
    assert isinstance(caught.value.__cause__, CheckpointUnavailableError)
    assert fake.stats.requests == 0


async def test_a_dead_holders_lease_ends_within_its_ttl(redis_server):
    watcher = sync_redis.Redis.from_url(redis_server.url)
    async with RedisCheckpoints.from_url(redis_server.url, lease_ttl=0.5) as store:
        ghost = Holder("gone-host", 4242, datetime.now(timezone.utc), "t")
        await store.job("orphan").claim(
            ghost, wait=0, clock=SystemClock()
        )  # and then it "dies": never renews
        assert 0 < watcher.pttl("sendkit:job:{orphan}:lease") <= 500
        async with FakeSendKit() as fake, fake.client() as client:
            with pytest.raises(ImportAbortedError) as caught:
                await client.dnc.import_bulk(distinct_valid(200), checkpoint=store, job="orphan")
            assert "gone-host (pid 4242)" in str(caught.value.__cause__)
            report = await client.dnc.import_bulk(
                distinct_valid(200), checkpoint=store, job="orphan", lease_wait=5
            )
    watcher.close()
    assert report.imported == 200


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"checkpoint": "redis://localhost/0"}, "needs a job name"),
        ({"checkpoint": "job.ckpt", "job": "x"}, "a checkpoint file is its own job"),
        ({"job": "x"}, "a checkpoint file is its own job"),
        ({"checkpoint": "redis://localhost/0", "job": ""}, "non-empty"),
        ({"checkpoint": "redis://localhost/0", "job": "two words"}, "without spaces"),
        ({"checkpoint": "redis://localhost/0", "job": "x" * 201}, "at most 200"),
        ({"checkpoint": "redis://localhost/0", "job": 5}, "non-empty name"),
        ({"checkpoint": "job.ckpt", "lease_wait": -1}, "lease_wait"),
        ({"checkpoint": "job.ckpt", "lease_wait": float("nan")}, "lease_wait"),
        ({"checkpoint": 42}, "file path, a redis:// URL or a checkpoint store"),
    ],
)
async def test_bad_checkpoint_arguments_are_typed_errors_and_nothing_is_sent(arguments, message):
    async with FakeSendKit() as fake, fake.client() as client:
        with pytest.raises(ValidationError, match=message):
            await client.dnc.import_bulk(["a@example.com"], **arguments)
    assert fake.stats.requests == 0


@pytest.mark.parametrize(
    "setting", [{"lease_ttl": 0}, {"lease_ttl": float("inf")}, {"completed_ttl": -1}, {"prefix": ""}]
)
def test_impossible_store_settings_are_refused(setting):
    with pytest.raises(ValidationError):
        RedisCheckpoints(sync_redis.asyncio.Redis(), **setting)


def test_the_store_names_where_it_is_without_the_password():
    store = RedisCheckpoints(sync_redis.asyncio.Redis.from_url("redis://:hunter2@cache.internal:6380/3"))
    assert "hunter2" not in repr(store)
    assert str(store.job("nightly")) == "job 'nightly' in redis://cache.internal:6380/3"
    secure = RedisCheckpoints(sync_redis.asyncio.Redis.from_url("rediss://:hunter2@cache.internal/0"))
    assert secure.where == "rediss://cache.internal:6379/0"


async def test_when_redis_dies_mid_job_the_job_stops_with_every_entry_accounted_for(redis_server):
    stopped, fake = await import_until_stopped(
        redis_server.url, "orphaned", at_batch=3, then=redis_server.kill
    )
    assert isinstance(stopped.__cause__, (CheckpointUnavailableError, JobLeaseLostError))
    assert_accounted(stopped.report, fake)
    assert stopped.report.imported >= 300  # the batches that landed before are reported as landed


def test_waits_and_lifetimes_take_seconds_and_say_what_they_take():
    assert ImportOptions(checkpoint="job.ckpt", lease_wait=math.inf).lease_wait == math.inf  # wait for ever
    store = RedisCheckpoints(sync_redis.asyncio.Redis(), completed_ttl=timedelta(hours=1), lease_ttl=2)
    assert (store.completed_ttl, store.lease_ttl) == (3600.0, 2.0)
    with pytest.raises(
        ValidationError, match=r"lease_ttl must be a finite number of seconds, more than 0\.3"
    ):
        RedisCheckpoints(sync_redis.asyncio.Redis(), lease_ttl=0.3)
    with pytest.raises(
        ValidationError, match="lease_wait must be a number of seconds, 0 or more, got 'soon'"
    ):
        ImportOptions(checkpoint="job.ckpt", lease_wait="soon")


@pytest.mark.skipif(sys.platform == "win32", reason="no flock on Windows")
async def test_a_lock_held_by_something_unreadable_is_still_refused_and_said_so(tmp_path):
    import fcntl  # noqa: PLC0415 - POSIX only

    lock = (tmp_path / "job.ckpt.lock").open("wb")
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    lock.write(b"not json")
    lock.flush()
    try:
        async with FakeSendKit() as fake, fake.client() as client:
            with pytest.raises(ImportAbortedError) as caught:
                await client.dnc.import_bulk(["a@example.com"], checkpoint=tmp_path / "job.ckpt")
        assert isinstance(caught.value.__cause__, JobLeaseHeldError)
        assert "an unknown host (pid 0)" in str(caught.value.__cause__)
        assert fake.stats.requests == 0
    finally:
        lock.close()

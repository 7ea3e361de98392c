"""Redis as it is deployed: a real 3-master cluster and a Sentinel group, the URL forms, misconfiguration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from sendkit_async import ConfigurationError, ValidationError
from sendkit_async._redis_url import connect, describe
from sendkit_async.budget import RedisBudget
from sendkit_async.bulk import RedisCheckpoints
from sendkit_async.testing import FakeSendKit

from .conftest import spawn_cluster, spawn_redis, spawn_sentinel_group, stop_redis


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory) -> Iterator[str]:
    """Three masters with a replica each; yields a cluster URL naming the masters."""
    cluster = spawn_cluster(tmp_path_factory.mktemp("cluster"))
    yield cluster.url
    cluster.stop()


@pytest.fixture(scope="module")
def redis_sentinels(tmp_path_factory) -> Iterator[str]:
    """A master, a replica and three Sentinels watching ``mymaster``; yields a Sentinel URL."""
    group = spawn_sentinel_group(tmp_path_factory.mktemp("sentinel"))
    yield group.url
    group.stop()


async def _import_through(budget: RedisBudget, store: RedisCheckpoints, job: str) -> None:
    async with FakeSendKit(rate_limit=50) as fake, fake.client(rate_budget=budget) as client:
        entries = [f"u{n}@example.com" for n in range(3_000)]
        report = await client.dnc.import_bulk(entries, batch_size=500, checkpoint=store, job=job)
        assert report.imported == 3_000
        again = await client.dnc.import_bulk(entries, batch_size=500, checkpoint=store, job=job)
        assert again.resumed_batches == 6  # the job's record was there to resume from
        assert fake.stats.by_route["POST /v1/dnc/import"] == 6


async def test_a_cluster_url_serves_the_budget_and_the_checkpoints(redis_cluster) -> None:
    async with (
        RedisBudget.from_url(redis_cluster) as budget,
        RedisCheckpoints.from_url(redis_cluster) as store,
    ):
        assert isinstance(store._redis, RedisCluster)
        assert store.where.startswith("redis+cluster://127.0.0.1:")
        assert "RedisCluster" not in repr(store)
        await _import_through(budget, store, "cluster-job")
        assert budget.shared


async def test_a_cluster_client_object_is_taken_as_it_is(redis_cluster) -> None:
    client = connect(redis_cluster, timeout=1.0)
    try:
        budget = RedisBudget(client)
        store = RedisCheckpoints(client)
        await _import_through(budget, store, "cluster-object-job")
        assert describe(client).startswith("redis+cluster://")
    finally:
        await client.aclose()


async def test_a_sentinel_url_follows_the_master(redis_sentinels) -> None:
    async with (
        RedisBudget.from_url(redis_sentinels) as budget,
        RedisCheckpoints.from_url(redis_sentinels) as store,
    ):
        assert store.where.endswith("/mymaster/0")
        assert store.where.startswith("redis+sentinel://127.0.0.1:")
        await _import_through(budget, store, "sentinel-job")
        assert budget.shared


async def test_a_plain_url_to_one_cluster_node_is_a_configuration_error_not_an_outage(redis_cluster) -> None:
    """``MOVED``: the key lives on another node. Fail-open would hide it for good."""
    first = redis_cluster.removeprefix("redis+cluster://").split(",")
    node_urls = [f"redis://{address.rstrip('/')}/0" for address in first]
    messages = []
    for url in node_urls:
        async with RedisCheckpoints.from_url(url) as store:
            try:
                await store.job("moved-job").read()
            except ConfigurationError as exc:
                messages.append(str(exc))
    assert len(messages) == 2  # the job's slot lives on one node; the other two answer MOVED
    assert all("moved" in message.lower() for message in messages)  # MovedError, or redis-py 5.0's reply


async def test_a_wrong_password_is_a_configuration_error_naming_no_password(redis_server) -> None:
    url = redis_server.url.replace("redis://", "redis://default:hunter2-SECRET@")
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.config_set("requirepass", "right-one")
    try:
        async with RedisBudget.from_url(url) as budget:
            budget.bind("key")
            with pytest.raises(ConfigurationError) as caught:
                await budget.acquire()
        assert "hunter2" not in str(caught.value)
        assert "hunter2" not in repr(budget)
    finally:
        async with aioredis.Redis.from_url(url.replace("hunter2-SECRET", "right-one")) as admin:
            await admin.config_set("requirepass", "")


@pytest.mark.parametrize(
    "url",
    [
        "redis+clusters://h:1/",
        "memcached://h:1/",
        "redis+sentinel://h:1/",  # no service
        "redis+cluster://h:notaport/",
    ],
)
def test_an_unknown_or_unreadable_url_is_refused_without_its_password(url) -> None:
    with pytest.raises(ConfigurationError) as caught:
        connect(url.replace("://", "://user:pw-SECRET@"), timeout=1.0)
    assert "pw-SECRET" not in str(caught.value)


def test_braces_in_a_job_name_or_prefix_are_refused() -> None:
    client = aioredis.Redis()
    with pytest.raises(ValidationError, match="braces"):
        RedisCheckpoints(client).job("a}b")
    with pytest.raises(ValidationError, match="braces"):
        RedisCheckpoints(client, prefix="x{y")
    with pytest.raises(ValidationError, match="braces"):
        RedisBudget(client, prefix="}x")


async def test_a_checkpoint_that_looks_like_an_unknown_url_is_refused_not_taken_for_a_path() -> None:
    async with FakeSendKit() as fake, fake.client() as client:
        with pytest.raises(ValidationError, match="URL"):
            await client.dnc.import_bulk(["a@example.com"], checkpoint="redis+sentinal://h:1/m", job="j")
        assert fake.stats.requests == 0


def test_descriptions_never_raise_and_never_hold_a_password() -> None:
    for client in (
        connect("redis://user:pw-SECRET@127.0.0.1:1/3", timeout=1.0),
        connect("redis+cluster://user:pw-SECRET@127.0.0.1:1,127.0.0.1:2/", timeout=1.0),
        connect("redis+sentinel://:pw-SECRET@127.0.0.1:1/mymaster/2", timeout=1.0),
        object(),
    ):
        text = describe(client)
        assert "pw-SECRET" not in text
    assert describe(connect("redis+sentinel://127.0.0.1:1/mymaster/2", timeout=1.0)) == (
        "redis+sentinel://127.0.0.1:1/mymaster/2"
    )


async def test_a_stall_shorter_than_the_lease_costs_time_not_the_job(redis_server) -> None:
    """``CLIENT PAUSE`` for 1.2 s under a 1.5 s lease: renewals and writes wait it out."""
    async with (
        RedisCheckpoints.from_url(redis_server.url, lease_ttl=1.5) as store,
        aioredis.Redis.from_url(redis_server.url) as admin,
        FakeSendKit(latency=0.05) as fake,
        fake.client() as client,
    ):

        async def pause_once(progress) -> None:
            if progress.batches == 2:
                await admin.execute_command("CLIENT", "PAUSE", "1200", "ALL")

        entries = [f"u{n}@example.com" for n in range(2_000)]
        report = await client.dnc.import_bulk(
            entries, batch_size=200, checkpoint=store, job="stall-job", on_progress=pause_once, concurrency=2
        )
        assert report.imported == 2_000
        assert report.balanced


async def test_a_server_asleep_for_less_than_the_lease_costs_time_not_the_job(tmp_path) -> None:
    """``DEBUG SLEEP 1.2`` (a slow fsync, a long script) under a 1.5 s lease: everything waits it out."""
    server = spawn_redis(tmp_path, "--enable-debug-command", "yes")
    sleeping = []
    try:
        async with (
            RedisCheckpoints.from_url(server.url, lease_ttl=1.5) as store,
            aioredis.Redis.from_url(server.url) as admin,
            FakeSendKit(latency=0.05) as fake,
            fake.client() as client,
        ):

            def sleep_once(progress) -> None:
                if progress.batches == 2 and not sleeping:
                    sleeping.append(asyncio.ensure_future(admin.execute_command("DEBUG", "SLEEP", "1.2")))

            entries = [f"u{n}@example.com" for n in range(2_000)]
            started = time.monotonic()
            report = await client.dnc.import_bulk(
                entries, batch_size=200, checkpoint=store, job="asleep", on_progress=sleep_once, concurrency=2
            )
            await sleeping[0]
        assert report.imported == 2_000
        assert report.balanced
        assert time.monotonic() - started >= 1.0  # it did wait for the server
    finally:
        stop_redis(server)


async def test_an_evicting_policy_is_named_in_a_warning(redis_server, caplog) -> None:
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.config_set("maxmemory-policy", "volatile-lru")
    async with (
        RedisCheckpoints.from_url(redis_server.url) as store,
        FakeSendKit() as fake,
        fake.client() as client,
    ):
        await client.dnc.import_bulk(["a@example.com"], checkpoint=store, job="evict-job")
    assert any("volatile-lru" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("form", ["cluster", "sentinel"])
def test_the_command_line_takes_every_redis_url_form(form, redis_cluster, redis_sentinels, tmp_path) -> None:
    import json  # noqa: PLC0415

    from click.testing import CliRunner  # noqa: PLC0415

    from sendkit_async.cli._app import cli  # noqa: PLC0415

    url = redis_cluster if form == "cluster" else redis_sentinels
    source = tmp_path / "dnc.txt"
    source.write_text("".join(f"cli{n}@example.com\n" for n in range(1_200)))
    result = CliRunner().invoke(
        cli, ["--fake", "--redis", url, "dnc", "import", str(source), "--batch-size", "500", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["imported"] == 1_200


@pytest.fixture
def guarded_redis(tmp_path) -> Iterator[str]:
    """A redis-server that wants a password; yields its port."""
    server = spawn_redis(tmp_path, "--requirepass", "the-right-one")
    yield server.url.rsplit(":", 1)[1].split("/", 1)[0]
    stop_redis(server)


async def test_a_wrong_redis_password_is_a_configuration_error_for_every_call(guarded_redis) -> None:
    url = f"redis://:not-the-password@127.0.0.1:{guarded_redis}/0"
    async with (
        RedisBudget.from_url(url) as budget,
        FakeSendKit() as fake,
        fake.client(rate_budget=budget) as client,
    ):
        for _ in range(2):
            with pytest.raises(ConfigurationError, match="refused") as caught:
                await client.dnc.get_page(limit=1)
            assert "not-the-password" not in str(caught.value)
        assert fake.stats.requests == 0


async def test_a_wrong_redis_password_stops_a_checkpointed_job_as_a_configuration_error(
    guarded_redis,
) -> None:
    url = f"redis://:not-the-password@127.0.0.1:{guarded_redis}/0"
    async with FakeSendKit() as fake, fake.client() as client:
        with pytest.raises(ConfigurationError, match="refused") as caught:
            await client.dnc.import_bulk(["a@example.com"], checkpoint=url, job="j1")
        assert "not-the-password" not in str(caught.value)
        assert fake.stats.requests == 0

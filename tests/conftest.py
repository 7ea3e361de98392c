from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import attrs
import pytest
import pytest_asyncio

from sendkit_async import SendKit
from sendkit_async.testing import FakeClock, VirtualTimeLoop

from .wire import Wire

pytest_plugins = ["sendkit_async.testing.pytest_plugin"]

API = "https://api.sendkit.ai"
KEY = "sk_live_0123456789abcdef_SECRET"
PLATFORM_KEY = "sk_user_0123456789abcdef_SECRET"


# The tiers. `slow`: real third-party servers and topologies (redis-server groups, nginx, HAProxy,
# uvicorn), subprocesses, multi-second runs; `pytest -m "not slow"` is the inner loop. `redis`:
# every test that starts a real redis-server (slow too). Whole modules are named here; single
# tests elsewhere carry `@pytest.mark.slow`.
SLOW_MODULES = frozenset(
    {
        "test_checkpoint_stores",
        "test_cli_jobs",
        "test_examples_run",
        "test_hostile_servers",
        "test_readme_examples",
        "test_real_limiters",
        "test_redis_budget",
        "test_redis_failover",
        "test_redis_topologies",
        "test_release_line",
    }
)
REDIS_FIXTURES = frozenset({"redis_server", "redis_url", "redis_cluster", "redis_sentinel"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        callspec = getattr(item, "callspec", None)
        redis_param = callspec is not None and "redis" in callspec.id.replace("[", "-").split("-")
        if redis_param or REDIS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)
            item.add_marker(pytest.mark.slow)
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """``@pytest.mark.virtual_time`` tests run on a VirtualTimeLoop; every other one on asyncio's own."""
    del config
    if item.get_closest_marker("virtual_time"):
        return {"virtual_time": VirtualTimeLoop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SENDKIT_API_KEY", "SENDKIT_BASE_URL", "SENDKIT_WORKSPACE_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wire() -> Wire:
    """A scripted wire (``wire.get(url, payload=...)``); ``client`` sends through it."""
    return Wire()


@pytest_asyncio.fixture
async def client(clock: FakeClock, wire: Wire) -> AsyncIterator[SendKit]:
    async with SendKit(api_key=KEY, clock=clock, transport=wire) as sendkit:
        yield sendkit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define
class RedisServer:
    """A real redis-server this test started, on a free loopback port."""

    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def redis_binary() -> str:
    """``redis-server`` from PATH (CI installs Debian's package; elsewhere the test is skipped)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not on PATH; .ci/run installs it")
        pytest.skip("no redis-server on PATH: install Debian's redis-server to run the shared-budget tests")
    return binary


def spawn_redis(folder, *options: str, port: int | None = None) -> RedisServer:
    """Start a real redis-server on a free loopback port (or ``port``) and wait until it listens."""
    binary = redis_binary()
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    argv = [binary, *options, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*argv, "--dir", str(folder)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.02)
    return RedisServer(f"redis://127.0.0.1:{port}/0", process)


def stop_redis(server: RedisServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        server.process.wait(timeout=10)


def redis_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


@attrs.define
class RedisGroup:
    """Real redis-servers started together: a cluster or a Sentinel group; ``url`` reaches them."""

    url: str
    servers: list[RedisServer]

    def stop(self) -> None:
        for server in self.servers:
            stop_redis(server)


def _cli(*args: str) -> bytes:
    cli = redis_binary().replace("redis-server", "redis-cli")
    return subprocess.run([cli, *args], capture_output=True, check=True, timeout=30).stdout


# A replica's first sync starts at once (Redis waits 5 s by default for more replicas to share it).
_SYNC_AT_ONCE = ("--repl-diskless-sync-delay", "0")


def spawn_cluster(folder, *, masters: int = 3, replicas: int = 1) -> RedisGroup:
    """A cluster of ``masters`` masters with ``replicas`` replicas each (``redis-cli --cluster create``).

    ``servers`` lists the masters first. The url names the masters only.
    """
    # The bus port is given: the default, port + 10,000, may be taken or past 65,535.
    options = ("--cluster-enabled", "yes", "--cluster-node-timeout", "2000", *_SYNC_AT_ONCE)
    servers = [
        spawn_redis(
            folder / str(n),
            *options,
            "--cluster-config-file",
            f"nodes-{n}.conf",
            "--cluster-port",
            str(free_port()),
        )
        for n in range(masters * (1 + replicas))
    ]
    addresses = [f"127.0.0.1:{redis_port(server.url)}" for server in servers]
    _cli("--cluster", "create", *addresses, "--cluster-replicas", str(replicas), "--cluster-yes")
    deadline = time.monotonic() + 30
    for address in addresses:
        while b"cluster_state:ok" not in _cli("-p", address.split(":")[1], "cluster", "info"):
            if time.monotonic() > deadline:
                pytest.fail("the cluster did not come up")
            time.sleep(0.1)
    for address in addresses[masters:]:
        while b"master_link_status:up" not in _cli("-p", address.split(":")[1], "info", "replication"):
            if time.monotonic() > deadline:
                pytest.fail("a replica did not catch up")
            time.sleep(0.05)
    return RedisGroup(f"redis+cluster://{','.join(addresses[:masters])}/", servers)


def spawn_sentinel_group(folder, *, down_after_ms: int = 1000) -> RedisGroup:
    """A master, a replica and three Sentinels watching ``mymaster``, which is down after ``down_after_ms``.

    ``servers`` lists the master, the replica, then the Sentinels.
    """
    master = spawn_redis(folder / "master", *_SYNC_AT_ONCE)
    port = redis_port(master.url)
    replica = spawn_redis(folder / "replica", "--replicaof", "127.0.0.1", str(port), *_SYNC_AT_ONCE)
    sentinels = []
    for number in range(3):
        config = folder / f"sentinel-{number}.conf"
        config.write_text(
            f"sentinel monitor mymaster 127.0.0.1 {port} 2\n"
            f"sentinel down-after-milliseconds mymaster {down_after_ms}\n"
            "sentinel failover-timeout mymaster 3000\n"
        )
        sentinels.append(spawn_redis(folder / f"s{number}", str(config), "--sentinel", port=free_port()))
    deadline = time.monotonic() + 20
    while b"master_link_status:up" not in _cli("-p", str(redis_port(replica.url)), "info", "replication"):
        if time.monotonic() > deadline:
            pytest.fail("the replica did not catch up")
        time.sleep(0.05)
    hosts = ",".join(f"127.0.0.1:{redis_port(s.url)}" for s in sentinels)
    return RedisGroup(f"redis+sentinel://{hosts}/mymaster/0", [master, replica, *sentinels])


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A real ``redis-server`` from PATH (CI installs Debian's package; elsewhere the test is skipped)."""
    server = spawn_redis(tmp_path)
    yield server
    stop_redis(server)


def revoke_key_after(fake, batches):
    """A progress callback that revokes the fake's keys once ``batches`` batches have landed."""

    def revoke(progress):
        if progress.batches == batches:
            fake.workspace_keys.clear()

    return revoke

"""The rate limiters real APIs sit behind, started on free ports in front of an API: real components.

* :func:`nginx`: ``limit_req`` keyed by the API key (Debian's nginx), any rate, burst (with
  ``nodelay`` or not), refusal status (429 or nginx's default 503) and ``Retry-After`` or none.
* :func:`haproxy`: a stick table tracking ``http_req_rate(1s)`` per key, refusing past the rate.
* :func:`python_limiter`: slowapi (fixed or moving window) or fastapi-limiter (Redis) on uvicorn,
  proxying to the API (``tests/limiter_apps.py``).

Each yields the limiter's base URL and stops it on exit. Used by the tests and by
``benchmarks/bench_limiters.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from sendkit_async._budget import BudgetSnapshot
from sendkit_async.budget import Lane, LocalBudget, Observation, Permit

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], what: str, *, log: Path | None = None) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                detail = log.read_text()[-2000:] if log is not None and log.exists() else ""
                raise RuntimeError(f"{what} did not start on port {port}: {detail}") from None
            time.sleep(0.02)


@contextlib.contextmanager
def _running(
    argv: list[str], port: int, what: str, *, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[str]:
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log is None else subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_for(port, process, what, log=log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(Path(folder) / name) for folder in ("/usr/sbin", "/sbin") if (Path(folder) / name).exists()),
        None,
    )
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (Debian's package; .ci/run installs it)")
    return found


def available(name: str) -> bool:
    """Whether Debian's ``nginx`` or ``haproxy`` is on this machine."""
    try:
        _binary(name)
    except FileNotFoundError:
        return False
    return True


def _upstream(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@contextlib.contextmanager
def nginx(
    upstream: str,
    *,
    rate: int = 10,
    burst: int = 0,
    nodelay: bool = False,
    status: int = 429,
    retry_after: str | None = None,
) -> Iterator[str]:
    """nginx's ``limit_req`` in front of ``upstream``: ``rate`` requests/s per ``X-Api-Key``.

    With ``burst`` 0 nginx refuses a request closer than 1/rate to the last
    one it let through (a leaky bucket); ``status`` is what it refuses with
    (its default is 503); ``retry_after`` adds that header to refusals.
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sendkit-nginx-") as folder:
        root = Path(folder)
        refusal = f"error_page {status} @refused;" if retry_after is not None else ""
        named = (
            f"location @refused {{ add_header Retry-After {retry_after} always; return {status}; }}"
            if retry_after is not None
            else ""
        )
        limit = (
            f"limit_req zone=key burst={burst}{' nodelay' if nodelay else ''};"
            if burst
            else "limit_req zone=key;"
        )
        (root / "nginx.conf").write_text(
            f"""
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 4m;
    proxy_buffering off;
    limit_req_zone $http_x_api_key zone=key:1m rate={rate}r/s;
    limit_req_status {status};
    limit_req_log_level info;
    upstream api {{ server {_upstream(upstream)}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            {limit}
            {refusal}
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        {named}
    }}
}}
"""
        )
        argv = [_binary("nginx"), "-p", str(root), "-c", str(root / "nginx.conf")]
        with _running(argv, port, "nginx", log=root / "error.log") as url:
            yield url


@contextlib.contextmanager
def haproxy(upstream: str, *, rate: int = 10, status: int = 429) -> Iterator[str]:
    """HAProxy tracking ``http_req_rate(1s)`` per ``X-Api-Key`` in a stick table, refusing past ``rate``."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sendkit-haproxy-") as folder:
        config = Path(folder) / "haproxy.cfg"
        config.write_text(
            f"""
global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    option http-keep-alive
frontend api
    bind 127.0.0.1:{port}
    stick-table type string len 128 size 10k expire 30s store http_req_rate(1s)
    http-request track-sc0 req.hdr(X-Api-Key)
    http-request deny deny_status {status} if {{ sc_http_req_rate(0) gt {rate} }}
    default_backend api
backend api
    server api {_upstream(upstream)}
"""
        )
        argv = [_binary("haproxy"), "-f", str(config), "-db"]
        with _running(argv, port, "haproxy") as url:
            yield url


@contextlib.contextmanager
def python_limiter(
    upstream: str, limiter: str, *, rate: int = 10, redis_url: str | None = None
) -> Iterator[str]:
    """A limiter from PyPI on uvicorn in front of ``upstream``.

    ``limiter`` is ``slowapi-fixed``, ``slowapi-moving`` or ``fastapi-limiter`` (which needs ``redis_url``).
    """
    port = free_port()
    env = {
        **os.environ,
        "SENDKIT_UPSTREAM": upstream,
        "SENDKIT_LIMITER": limiter,
        "SENDKIT_LIMITER_RATE": str(rate),
        "PYTHONPATH": str(ROOT),
    }
    if redis_url is not None:
        env["SENDKIT_LIMITER_REDIS"] = redis_url
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.limiter_apps:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with _running(argv, port, limiter, env=env) as url:
        yield url


class StatusRecorder:
    """The SDK's default budget, with the status of every attempt written down on the way."""

    def __init__(self) -> None:
        self.inner = LocalBudget()
        self.statuses: list[int | None] = []

    def bind(self, key_id: str) -> None:
        self.inner.bind(key_id)

    async def acquire(self, lane: Lane) -> Permit:
        return await self.inner.acquire(lane)

    async def observe(self, permit: Permit, observation: Observation) -> None:
        self.statuses.append(observation.status)
        await self.inner.observe(permit, observation)

    def snapshot(self) -> BudgetSnapshot:
        return self.inner.snapshot()

"""Pacing behind the rate limiters real APIs sit behind, and the vendors' dialects: SDK vs a semaphore loop.

Run with ``nox -s bench -- limiters`` (or ``python benchmarks/bench_limiters.py``).
The fake server runs in its own process (150 ms per batch, no limit of its
own) behind a real limiter started on a free port (``tests/limiters.py``):
nginx ``limit_req`` and HAProxy from Debian's packages, slowapi and
fastapi-limiter on uvicorn, each allowing 10 requests/s per API key. The
dialect cells run the fake's own limiter (10 requests/s) spelled the way a
vendor spells it. Each client imports 1,000,000 entries (100 requests of
10,000): the SDK with its defaults, and aiohttp + semaphore(8) retrying 429,
503 and 403 after ``Retry-After`` (1 s when there is none).

Every cell states its ideal, the limiter's physical floor for 100 requests
with 150 ms of latency: a leaky bucket (nginx, no burst) lets one through
every 100 ms, so 99 gaps; with ``burst=10`` 11 go at once; a fixed window
(and a sliding log) lets 10 through at the start of each of 10 windows, so 9
waits; HAProxy's sliding rate counter lets 10 through at once, then 10 a
second. Refusals are every answer a limiter refused (429, 503, 403), counted
on the wire; stored entries are counted on the fake itself. Then the short
job (30 requests) behind nginx and slowapi, and four processes on one
``RedisBudget`` (25 requests each), timed from the first start to the last exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from _harness import HEADERS, KEY, emails, fake_server, stored, wire_batches
from bench_shared import redis_server

sys.path.insert(0, str(Path(__file__).parent.parent))
from sendkit_async import SendKit
from sendkit_async.budget import RedisBudget
from sendkit_async.testing._matrix import DIALECTS, Cell
from tests import limiters

RATE = 10
LATENCY_MS = 150
BATCH = 10_000
CONCURRENCY = 8
THROTTLES = frozenset({429, 503, 403})

LEAKY = "leaky"
BURST = "burst"
WINDOW = "window"
COUNTER = "counter"


def ideal(kind: str, requests: int, rate: int = RATE, burst: int = 0) -> float:
    """The limiter's physical floor for ``requests`` with one batch's latency on top."""
    latency = LATENCY_MS / 1000
    if kind == LEAKY:
        return (requests - 1) / rate + latency
    if kind == BURST:
        return max(requests - 1 - burst, 0) / rate + latency
    if kind == WINDOW:
        return (-(-requests // rate) - 1) + latency
    # HAProxy's sliding counter: the first second's quota at once, then the rate.
    return max(requests - rate, 0) / rate + (1.0 if requests > rate else 0.0) - 1 / rate + latency


@attrs.frozen
class Front:
    """One limiter in front of the fake: how to start it around the fake's URL, and its physical floor."""

    name: str
    start: Callable[[str, str], contextlib.AbstractContextManager[str]]
    kind: str
    burst: int = 0
    # Behind a limiter the API itself sends no rate-limit fields: the limiter's are the only ones.
    fake_args: tuple[str, ...] = ("--rate-headers", "none")

    def ideal(self, requests: int) -> float:
        return ideal(self.kind, requests, burst=self.burst)


def _nginx(**options: Any) -> Callable[[str, str], contextlib.AbstractContextManager[str]]:
    return lambda upstream, _redis: limiters.nginx(upstream, rate=RATE, **options)


def _python(name: str) -> Callable[[str, str], contextlib.AbstractContextManager[str]]:
    return lambda upstream, redis: limiters.python_limiter(upstream, name, rate=RATE, redis_url=redis)


@contextlib.contextmanager
def _direct(upstream: str, _redis: str) -> Iterator[str]:
    yield upstream


FRONTS = [
    Front("nginx `limit_req rate=10r/s`, no burst, 429, no headers", _nginx(), LEAKY),
    Front("nginx, same, its default status 503", _nginx(status=503), LEAKY),
    Front("nginx + `Retry-After: 1` on the 429", _nginx(retry_after="1"), LEAKY),
    Front("nginx `burst=10 nodelay`", _nginx(burst=10, nodelay=True), BURST, burst=10),
    Front(
        "HAProxy stick table `http_req_rate(1s)` > 10 -> 429",
        lambda upstream, _redis: limiters.haproxy(upstream, rate=RATE),
        COUNTER,
    ),
    Front("slowapi (limits), fixed window, X-RateLimit-* + Retry-After", _python("slowapi-fixed"), WINDOW),
    Front("slowapi, moving window", _python("slowapi-moving"), WINDOW),
    Front("fastapi-limiter 0.1.x (Redis), Retry-After only", _python("fastapi-limiter"), WINDOW),
]


def _dialect(cell: Cell) -> Front:
    limit = RATE
    return Front(
        f"fake: {cell.name}",
        _direct,
        WINDOW,
        fake_args=("--rate-limit", str(limit), *cell.server_args()),
    )


def _counts(statuses: list[int | None]) -> dict[str, int]:
    return {"requests": len(statuses), "refused": sum(status in THROTTLES for status in statuses)}


async def sdk_import(url: str, count: int, start: int = 0) -> dict[str, Any]:
    recorder = limiters.StatusRecorder()
    async with SendKit(api_key=KEY, base_url=url, rate_budget=recorder) as client:
        await client.dnc.import_bulk(emails(count) if not start else _emails(start, count))
    return _counts(recorder.statuses)


def _emails(start: int, count: int) -> Iterator[str]:
    return (f"user{i}@example.com" for i in range(start, start + count))


def _wait(headers: Any) -> float:
    """What a careful hand-written loop reads from ``Retry-After`` (1 s when absent or unreadable)."""
    try:
        return max(float(headers.get("Retry-After", "1")), 0.0)
    except ValueError:
        return 1.0


async def semaphore_import(url: str, count: int) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    statuses: list[int | None] = []
    async with aiohttp.ClientSession(headers=HEADERS) as session:

        async def post(body: bytes) -> None:
            async with semaphore:
                while True:
                    async with session.post(f"{url}/v1/dnc/import", data=body) as response:
                        await response.read()
                    statuses.append(response.status)
                    if response.status not in THROTTLES and response.status < 500:
                        return
                    await asyncio.sleep(_wait(response.headers))

        await asyncio.gather(*(post(b) for b in wire_batches(count)))
    return _counts(statuses)


def run(front: Front, client: Any, count: int, redis: str) -> dict[str, Any]:
    floor = front.ideal(-(-count // BATCH))
    # A run that stalls is a finding, not a hung benchmark: it is cut at 10x its ideal and shown.
    deadline = 10 * floor + 30
    with fake_server("--latency-ms", str(LATENCY_MS), *front.fake_args) as upstream:
        with front.start(upstream, redis) as url:
            started = time.monotonic()
            try:
                outcome = asyncio.run(asyncio.wait_for(client(url, count), deadline))
            except asyncio.TimeoutError:
                outcome = {"requests": -1, "refused": -1, "timed_out": True}
            wall = time.monotonic() - started
        held = stored(upstream)
    return {**outcome, "wall": wall, "ratio": wall / floor, "stored": held, "count": count, "ideal": floor}


def run_processes(front: Front, processes: int, count: int, redis: str) -> dict[str, Any]:
    """``processes`` workers of ``count / processes`` entries, one RedisBudget: first start to last exit."""
    per = count // processes
    with fake_server("--latency-ms", str(LATENCY_MS), *front.fake_args) as upstream:
        with front.start(upstream, redis) as url:
            started = time.monotonic()
            workers = [
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", url, redis, str(n * per), str(per)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for n in range(processes)
            ]
            outcomes = [json.loads(worker.communicate(timeout=900)[0]) for worker in workers]
            wall = time.monotonic() - started
        held = stored(upstream)
    floor = front.ideal(-(-count // BATCH))
    return {
        "requests": sum(o["requests"] for o in outcomes),
        "refused": sum(o["refused"] for o in outcomes),
        "wall": wall,
        "ratio": wall / floor,
        "stored": held,
        "count": count,
        "ideal": floor,
    }


async def worker(url: str, redis: str, start: int, count: int) -> dict[str, Any]:
    """One of the processes: the SDK with its defaults on a shared RedisBudget."""
    async with RedisBudget.from_url(redis) as shared:
        recorder = limiters.StatusRecorder()
        recorder.inner = shared  # type: ignore[assignment]
        async with SendKit(api_key=KEY, base_url=url, rate_budget=recorder) as client:
            await client.dnc.import_bulk(_emails(start, count))
    return _counts(recorder.statuses)


def _side(side: dict[str, Any]) -> str:
    if side.get("timed_out"):
        return f"**stalled** (cut at {side['wall']:.0f} s) | | {side['stored']:,}"
    share = side["refused"] / max(side["requests"], 1)
    return f"{side['ratio']:.2f} | {side['refused']} / {side['requests']} ({share:.0%}) | {side['stored']:,}"


def row(label: str, sdk: dict[str, Any], loop: dict[str, Any] | None, target: float = 1.10) -> str:
    met = (
        sdk["ratio"] <= target
        and sdk["refused"] <= 0.02 * sdk["requests"]
        and sdk["stored"] == sdk["count"]
        and (loop is None or sdk["wall"] < loop["wall"])
    )
    other = "n/a | | " if loop is None else _side(loop)
    ahead = "n/a" if loop is None else ("yes" if sdk["wall"] < loop["wall"] else "**no**")
    verdict = "yes" if met else "**no**"
    return f"| {label} | {sdk['ideal']:.2f} s | {_side(sdk)} | {other} | {ahead} | {verdict} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--only", default="", help="run only the cells whose name contains this")
    parser.add_argument("--sdk-only", action="store_true", help="skip the semaphore loop")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        url, redis, start, count = args.worker
        print(json.dumps(asyncio.run(worker(url, redis, int(start), int(count)))))
        return

    print(
        f"\n{args.count:,} entries in {BATCH:,}-entry requests, {LATENCY_MS} ms per batch, {RATE} requests/s "
        "per key; the SDK with its defaults beside aiohttp + semaphore(8) retrying 429/503/403 after "
        "Retry-After; x ideal = wall / the limiter's physical floor\n"
    )
    print(
        "| limiter in front of the API | ideal | SDK x ideal | refused / requests | stored "
        "| semaphore loop x ideal | refused / requests | stored | SDK ahead | target met |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |", flush=True)
    with redis_server() as redis:
        for front in [*FRONTS, *map(_dialect, DIALECTS)]:
            if args.only not in front.name:
                continue
            sdk = run(front, sdk_import, args.count, redis)
            loop = None if args.sdk_only else run(front, semaphore_import, args.count, redis)
            print(row(front.name, sdk, loop), flush=True)
        short = 30 * BATCH
        for front in (FRONTS[0], FRONTS[5]):
            if args.only not in front.name:
                continue
            sdk = run(front, sdk_import, short, redis)
            loop = None if args.sdk_only else run(front, semaphore_import, short, redis)
            print(row(f"short job, 30 requests: {front.name}", sdk, loop, target=1.15), flush=True)
        for front in (FRONTS[0], FRONTS[5]):
            if args.only not in front.name:
                continue
            sdk = run_processes(front, 4, args.count, redis)
            print(row(f"4 processes, one RedisBudget: {front.name}", sdk, None, target=1.15), flush=True)


if __name__ == "__main__":
    main()

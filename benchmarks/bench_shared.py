"""Four processes on one key: a budget shared through Redis beside four local budgets.

Run with ``nox -s bench -- shared`` (or ``python benchmarks/bench_shared.py``).
Each of four processes imports 500,000 distinct addresses (50 requests of
10,000) into one fake server in its own process (20 requests/s, 100 ms
latency); a real redis-server (from PATH) holds the shared budget. Prints the
slowest process's time / ideal (200 requests at 20/s: 10 s), 429s / requests
and lost entries, for a fixed window and a token bucket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _harness import KEY, emails, fake_server, stored

from sendkit_async import RateBudget, RedisBudget, SendKit

PROCESSES = 4
PER_PROCESS = 500_000
RATE = 20
LATENCY_MS = 100


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = subprocess.Popen([*argv, "--dir", folder], stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


async def work(base_url: str, redis_url: str | None, prefix: str, count: int) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        budget: RateBudget | None = None
        if redis_url:
            budget = await stack.enter_async_context(RedisBudget.from_url(redis_url))
        client = await stack.enter_async_context(SendKit(api_key=KEY, base_url=base_url, rate_budget=budget))
        # Every process starts the job together: report ready, wait for the word.
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        started = time.monotonic()
        report = await client.dnc.import_bulk((f"{prefix}{a}" for a in emails(count)), concurrency=8)
        return {
            "elapsed": time.monotonic() - started,
            "requests": report.requests,
            "429s": report.rate_limited,
            "imported": report.imported,
        }


def run(shape_args: list[str], redis_url: str | None) -> dict[str, Any]:
    with fake_server("--latency-ms", str(LATENCY_MS), "--rate-limit", str(RATE), *shape_args) as url:
        argv = [sys.executable, __file__, "--worker", url, redis_url or "", str(PER_PROCESS)]
        workers = [
            subprocess.Popen([*argv, f"p{n}-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for n in range(PROCESSES)
        ]
        for process in workers:
            if process.stdout is None or process.stdout.readline().strip() != "ready":
                raise RuntimeError("a worker did not start")
        for process in workers:
            if process.stdin is not None:
                process.stdin.write("go\n")
                process.stdin.flush()
        reports = [json.loads(w.communicate(timeout=600)[0].strip().splitlines()[-1]) for w in workers]
        lost = PROCESSES * PER_PROCESS - stored(url)
    requests = sum(r["requests"] for r in reports)
    rate_limited = sum(r["429s"] for r in reports)
    ideal = PROCESSES * -(-PER_PROCESS // 10_000) / RATE
    slowest = max(r["elapsed"] for r in reports)
    return {"ratio": slowest / ideal, "429s": rate_limited, "requests": requests, "lost": lost}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=4, metavar=("URL", "REDIS", "COUNT", "PREFIX"))
    args = parser.parse_args()
    if args.worker:
        url, redis_url, count, prefix = args.worker
        print(json.dumps(asyncio.run(work(url, redis_url or None, prefix, int(count)))))
        return

    shapes = [("fixed window", ["--limiter", "fixed"]), ("token bucket, burst 1", ["--limiter", "token"])]
    rows = []
    with redis_server() as redis_url:
        for name, shape_args in shapes:
            for label, url in (("one budget in Redis", redis_url), ("four local budgets", None)):
                rows.append((name, label, run(shape_args, url)))
    print(
        f"\n{PROCESSES} processes x {PER_PROCESS:,} entries, one key, {RATE} requests/s, "
        f"{LATENCY_MS} ms latency; ideal {PROCESSES * PER_PROCESS // 10_000 / RATE:.0f} s\n"
    )
    print("| limiter | budget | slowest / ideal | 429s / requests | lost entries |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, label, row in rows:
        share = f"{row['429s']} / {row['requests']} ({row['429s'] / row['requests']:.1%})"
        print(f"| {name} | {label} | {row['ratio']:.2f} | {share} | {row['lost']:,} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()

"""Import 1,000,000 entries into the fake server (50 ms latency, 20 requests/s) four ways.

Run with ``nox -s bench`` (or ``python benchmarks/bench_import.py``). Prints a
throughput table and a peak-memory table; the README shows the latest run.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import requests
from _harness import HEADERS, KEY, emails, fake_server, post_all, stored, wire_batches

from sendkit_async import SendKit

LATENCY_MS = 50
RATE = 20


def seed_sample(url: str, count: int) -> dict[str, Any]:
    """(a) The seed page's `requests` sample, looped over 10,000-entry batches."""
    rate_limited = 0
    for body in wire_batches(count):
        response = requests.post(f"{url}/v1/dnc/import", headers=HEADERS, data=body, timeout=120)
        rate_limited += response.status_code == 429
    return {"429s": rate_limited}


async def gather_unlimited(url: str, count: int) -> dict[str, Any]:
    """(b) aiohttp with asyncio.gather and no limiter."""
    async with aiohttp.ClientSession(headers=HEADERS) as session:

        async def post(body: bytes) -> int:
            async with session.post(f"{url}/v1/dnc/import", data=body) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(post(b) for b in wire_batches(count)))
    return {"429s": statuses.count(429)}


async def semaphore_retry_after(url: str, count: int, concurrency: int = 8) -> dict[str, Any]:
    """(c) aiohttp under a semaphore that sleeps on Retry-After and tries again."""
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        rate_limited = await post_all(session, url, wire_batches(count), concurrency)
    return {"429s": rate_limited}


async def sendkit_bulk(url: str, count: int, concurrency: int = 4) -> dict[str, Any]:
    """(d) sendkit_async's import_bulk."""
    async with SendKit(api_key=KEY, base_url=url) as client:
        report = await client.dnc.import_bulk(emails(count), concurrency=concurrency)
    return {"429s": report.rate_limited, "requests": report.requests}


def measure(name: str, run: Callable[[str, int], Any], count: int) -> dict[str, Any]:
    with fake_server("--latency-ms", str(LATENCY_MS), "--rate-limit", str(RATE)) as url:
        started = time.perf_counter()
        outcome = run(url, count)
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
        wall = time.perf_counter() - started
        lost = count - stored(url)
    requests_made = -(-count // 10_000)
    ideal = requests_made / RATE
    return {
        "approach": name,
        "wall": wall,
        "eps": count / wall,
        "lost": lost,
        "ratio": wall / ideal,
        **outcome,
    }


def memory_child(count: int, dedupe: bool) -> None:
    """Import ``count`` generated entries and print the peak RSS in MiB."""

    async def run(url: str) -> None:
        async with SendKit(api_key=KEY, base_url=url) as client:
            report = await client.dnc.import_bulk(emails(count), dedupe=dedupe, concurrency=4)
        if report.imported != count:
            raise RuntimeError(f"lost entries: {report}")

    with fake_server() as url:
        asyncio.run(run(url))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_rss(count: int, *, dedupe: bool) -> float:
    argv = [sys.executable, __file__, "--memory-child", str(count), "--dedupe" if dedupe else "--no-dedupe"]
    return float(
        subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--memory", type=int, nargs="*", default=[1_000_000, 5_000_000])
    parser.add_argument("--memory-child", type=int)
    parser.add_argument("--dedupe", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.dedupe)
        return

    rows = [
        measure("(a) seed `requests` sample, sequential", seed_sample, args.count),
        measure("(b) aiohttp + asyncio.gather, no limiter", gather_unlimited, args.count),
        measure("(c) aiohttp + semaphore(8), sleeps on Retry-After", semaphore_retry_after, args.count),
        measure("(d) sendkit_async import_bulk (concurrency 4)", sendkit_bulk, args.count),
        measure(
            "(e) sendkit_async import_bulk (concurrency 8)",
            lambda url, count: sendkit_bulk(url, count, concurrency=8),
            args.count,
        ),
    ]
    ideal = -(-args.count // 10_000) / RATE
    print(
        f"\n{args.count:,} entries, {LATENCY_MS} ms latency, {RATE} requests/s limit; ideal {ideal:.1f} s\n"
    )
    print("| approach | wall s | entries/s | 429s | lost entries | x ideal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['approach']} | {row['wall']:.1f} | {row['eps']:,.0f} | {row['429s']} | "
            f"{row['lost']:,} | {row['ratio']:.2f} |"
        )
    if args.memory:
        print("\nPeak RSS of the importing process (fake server in another process)\n")
        print("| entries | dedupe=False | dedupe=True |")
        print("| ---: | ---: | ---: |")
        for count in args.memory:
            plain, deduped = peak_rss(count, dedupe=False), peak_rss(count, dedupe=True)
            print(f"| {count:,} | {plain:.0f} MiB | {deduped:.0f} MiB |")


if __name__ == "__main__":
    main()

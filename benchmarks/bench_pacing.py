"""Pacing under every limiter shape: the SDK's rate budget beside aiohttp + semaphore(8) + Retry-After.

Run with ``nox -s bench -- pacing`` (or ``python benchmarks/bench_pacing.py``).
For each shape the fake server runs in its own process (10 requests/s, 100 ms
latency) and each client imports 1,000,000 entries (100 requests of 10,000)
with 8 requests in flight. Prints wall time / ideal, 429s / requests and lost
entries; then 500 concurrent single calls at 20 requests/s; and draws
``benchmarks/pacing.png``: sends per 100 ms against the limit, over time.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from _harness import HEADERS, KEY, emails, fake_server, stored, wire_batches

from sendkit_async import Lane, LocalBudget, Observation, Permit, SendKit
from sendkit_async._budget import BudgetSnapshot

LATENCY_MS = 100
RATE = 10
CONCURRENCY = 8
CHART = Path(__file__).with_name("pacing.png")

SHAPES: list[tuple[str, list[str], float]] = [
    ("fixed window, headers", ["--limiter", "fixed"], 0.0),
    ("token bucket, burst 1", ["--limiter", "token", "--burst", "1"], 0.0),
    ("fixed window, no headers", ["--limiter", "fixed", "--rate-headers", "none"], 0.0),
    ("fixed window, another tenant spends half", ["--limiter", "fixed", "--tenant-share", "0.5"], 0.5),
]


class Recorder:
    """A rate budget that records every send and answer, around the SDK's own."""

    def __init__(self) -> None:
        self.inner = LocalBudget()
        self.sends: list[tuple[float, int | None]] = []
        self._sent: dict[int, float] = {}

    def bind(self, key_id: str) -> None:
        self.inner.bind(key_id)

    async def acquire(self, lane: Lane) -> Permit:
        permit = await self.inner.acquire(lane)
        self._sent[permit.token] = time.monotonic()
        return permit

    async def observe(self, permit: Permit, observation: Observation) -> None:
        self.sends.append((self._sent.pop(permit.token), observation.status))
        await self.inner.observe(permit, observation)

    def snapshot(self) -> BudgetSnapshot:
        return self.inner.snapshot()


async def sdk_import(url: str, count: int) -> dict[str, Any]:
    recorder = Recorder()
    async with SendKit(api_key=KEY, base_url=url, rate_budget=recorder) as client:
        report = await client.dnc.import_bulk(emails(count), concurrency=CONCURRENCY)
    return {"requests": report.requests, "429s": report.rate_limited, "sends": recorder.sends}


async def semaphore_import(url: str, count: int) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    sends: list[tuple[float, int | None]] = []
    async with aiohttp.ClientSession(headers=HEADERS) as session:

        async def post(body: bytes) -> None:
            async with semaphore:
                while True:
                    sent = time.monotonic()
                    async with session.post(f"{url}/v1/dnc/import", data=body) as response:
                        await response.read()
                    sends.append((sent, response.status))
                    if response.status != 429:
                        return
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

        await asyncio.gather(*(post(b) for b in wire_batches(count)))
    rate_limited = sum(status == 429 for _, status in sends)
    return {"requests": len(sends), "429s": rate_limited, "sends": sends}


def run(client: Any, args: list[str], count: int, share: float) -> dict[str, Any]:
    with fake_server("--latency-ms", str(LATENCY_MS), "--rate-limit", str(RATE), *args) as url:
        started = time.monotonic()
        outcome = asyncio.run(client(url, count))
        wall = time.monotonic() - started
        lost = count - stored(url)
    ideal = -(-count // 10_000) / (RATE * (1 - share))
    sends = [(at - started, status) for at, status in outcome["sends"]]
    return {**outcome, "wall": wall, "ratio": wall / ideal, "lost": lost, "sends": sends, "ideal": ideal}


async def sdk_singles(url: str, calls: int) -> dict[str, Any]:
    errors = 0
    async with SendKit(api_key=KEY, base_url=url) as client:

        async def one(i: int) -> None:
            nonlocal errors
            try:
                await client.dnc.import_entries([f"web{i}@example.com"])
            except Exception:  # noqa: BLE001 - counted, that is the measurement
                errors += 1

        await asyncio.gather(*(one(i) for i in range(calls)))
    return {"errors": errors}


async def semaphore_singles(url: str, calls: int) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    errors = 0
    async with aiohttp.ClientSession(headers=HEADERS) as session:

        async def one(i: int) -> None:
            nonlocal errors
            body = b'{"entries":[{"email":"web%d@example.com"}]}' % i
            async with semaphore:
                for _ in range(3):  # the SDK's default: a first try and two retries
                    async with session.post(f"{url}/v1/dnc/import", data=body) as response:
                        await response.read()
                    if response.status != 429:
                        return
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                errors += 1

        await asyncio.gather(*(one(i) for i in range(calls)))
    return {"errors": errors}


def singles(client: Any, calls: int, rate: int) -> dict[str, Any]:
    with fake_server("--latency-ms", str(LATENCY_MS), "--rate-limit", str(rate)) as url:
        started = time.monotonic()
        outcome = asyncio.run(client(url, calls))
        wall = time.monotonic() - started
    return {**outcome, "wall": wall, "ratio": wall / (calls / rate)}


def server_ceiling(count: int = 400_000) -> float:
    """Entries per second the fake server ingests with no limit and no latency."""

    async def push(url: str) -> None:
        semaphore = asyncio.Semaphore(CONCURRENCY)
        async with aiohttp.ClientSession(headers=HEADERS) as session:

            async def post(body: bytes) -> None:
                async with semaphore, session.post(f"{url}/v1/dnc/import", data=body) as response:
                    await response.read()

            await asyncio.gather(*(post(b) for b in bodies))

    bodies = list(wire_batches(count))
    with fake_server() as url:
        started = time.monotonic()
        asyncio.run(push(url))
        return count / (time.monotonic() - started)


def chart(results: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
    import matplotlib as mpl  # noqa: PLC0415 - only the benchmark draws

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(len(results), 2, figsize=(13, 2.3 * len(results)), sharex=True, squeeze=False)
    horizon = max(max(at for at, _ in side["sends"]) for _, a, b in results for side in (a, b)) + 0.5
    bins = [i * 0.1 for i in range(int(horizon / 0.1) + 2)]
    for row, (name, sdk, loop) in enumerate(results):
        for column, (label, side) in enumerate((("sendkit_async", sdk), ("aiohttp + semaphore(8)", loop))):
            axis = axes[row][column]
            ok = [at for at, status in side["sends"] if status != 429]
            refused = [at for at, status in side["sends"] if status == 429]
            axis.hist(
                [ok, refused], bins=bins, stacked=True, color=["#2b6cb0", "#e53e3e"], label=["sent", "429"]
            )
            share = 0.5 if "tenant" in name else 0.0
            axis.axhline(
                RATE * 0.1 * (1 - share), color="black", linewidth=0.8, linestyle="--", label="limit"
            )
            axis.set_title(f"{label}: {name}  ({side['ratio']:.2f}x ideal, {side['429s']} x 429)", fontsize=9)
            axis.set_ylim(0, 8.5)
            axis.set_ylabel("sends / 100 ms", fontsize=8)
            if row == 0 and column == 0:
                axis.legend(fontsize=7, loc="upper right")
    for axis in axes[-1]:
        axis.set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(CHART, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()

    ceiling = server_ceiling()
    print(f"\nfake server alone (no limit, no latency, own process): {ceiling:,.0f} entries/s ingested")
    print(f"the pacing runs need {RATE * 10_000:,} entries/s\n")

    results = []
    for name, shape_args, share in SHAPES:
        sdk = run(sdk_import, shape_args, args.count, share)
        loop = run(semaphore_import, shape_args, args.count, share)
        results.append((name, sdk, loop))

    print(
        f"{args.count:,} entries in 10,000-entry requests, {CONCURRENCY} in flight, "
        f"{LATENCY_MS} ms latency, {RATE} requests/s\n"
    )
    print("| limiter | client | x ideal | 429s / requests | lost entries |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, sdk, loop in results:
        for label, side in (("sendkit_async", sdk), ("aiohttp + semaphore(8) + Retry-After", loop)):
            share = f"{side['429s']} / {side['requests']} ({side['429s'] / side['requests']:.0%})"
            print(f"| {name} | {label} | {side['ratio']:.2f} | {share} | {side['lost']:,} |")

    rate = 20
    print(
        f"\n{args.calls} concurrent single calls through one client, {rate} requests/s, "
        f"ideal {args.calls / rate:.0f} s\n"
    )
    print("| client | x ideal | calls that raised |")
    print("| --- | ---: | ---: |")
    for label, client in (
        ("sendkit_async (one SendKit, asyncio.gather)", sdk_singles),
        ("aiohttp + semaphore(8) + Retry-After, 2 retries", semaphore_singles),
    ):
        row = singles(client, args.calls, rate)
        print(f"| {label} | {row['ratio']:.2f} | {row['errors']} |")

    chart(results)
    print(f"\nchart: {CHART}")


if __name__ == "__main__":
    main()

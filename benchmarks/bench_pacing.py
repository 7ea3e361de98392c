"""Pacing under every limiter shape and header spelling: the SDK beside aiohttp + semaphore(8) + Retry-After.

Run with ``nox -s bench -- pacing`` (or ``python benchmarks/bench_pacing.py``).
For each cell of the matrix (``sendkit_async.testing._matrix``) the fake server
runs in its own process (10 requests/s, 150 ms per batch) and each client
imports 1,000,000 entries (100 requests of 10,000) with 8 requests in flight.
Prints wall time / ideal (ideal: requests / the rate left to us + one batch),
429s / requests and lost entries; then a short job (300,000 entries, 400 ms
per batch) and 500 concurrent single calls at 20 requests/s; and draws
``benchmarks/pacing.png`` for the hardest cells: sends per 100 ms against the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import time
from pathlib import Path
from typing import Any

import aiohttp
from _harness import HEADERS, KEY, emails, fake_server, stored, wire_batches

from sendkit_async import SendKit
from sendkit_async._budget import BudgetSnapshot
from sendkit_async.budget import Lane, LocalBudget, Observation, Permit
from sendkit_async.testing._limits import Spelling
from sendkit_async.testing._matrix import BLIND, CELLS, Cell

LATENCY_MS = 150
RATE = 10
CONCURRENCY = 8
CHART = Path(__file__).with_name("pacing.png")
HARDEST = (
    "token bucket burst 1, reset = whole seconds from now",
    "fixed, epoch reset, server clock 0.4 s ahead",
    "sliding log, reset = whole seconds from now",
    BLIND.name,
)


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


def retry_after(headers: Any) -> float:
    """What a careful hand-written loop reads from ``Retry-After``: seconds or an HTTP date."""
    raw = headers.get("Retry-After", "1")
    try:
        return float(raw)
    except ValueError:
        return max(email.utils.parsedate_to_datetime(raw).timestamp() - time.time(), 0.0)


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
                    await asyncio.sleep(retry_after(response.headers))

        await asyncio.gather(*(post(b) for b in wire_batches(count)))
    rate_limited = sum(status == 429 for _, status in sends)
    return {"requests": len(sends), "429s": rate_limited, "sends": sends}


def run(client: Any, cell: Cell, count: int, latency_ms: int = LATENCY_MS) -> dict[str, Any]:
    args = ("--latency-ms", str(latency_ms), "--rate-limit", str(RATE), *cell.server_args())
    with fake_server(*args) as url:
        started = time.monotonic()
        outcome = asyncio.run(client(url, count))
        wall = time.monotonic() - started
        lost = count - stored(url)
    ideal = -(-count // 10_000) / (RATE * (1 - cell.tenant_share)) + latency_ms / 1000
    sends = [(at - started, status) for at, status in outcome["sends"]]
    return {**outcome, "wall": wall, "ratio": wall / ideal, "lost": lost, "sends": sends, "ideal": ideal}


async def sdk_singles(url: str, calls: int) -> dict[str, Any]:
    errors = 0
    recorder = Recorder()
    async with SendKit(api_key=KEY, base_url=url, rate_budget=recorder) as client:

        async def one(i: int) -> None:
            nonlocal errors
            try:
                await client.dnc.import_entries([f"web{i}@example.com"])
            except Exception:  # noqa: BLE001 - counted, that is the measurement
                errors += 1

        await asyncio.gather(*(one(i) for i in range(calls)))
    return {"errors": errors, "429s": sum(status == 429 for _, status in recorder.sends)}


async def semaphore_singles(url: str, calls: int) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    errors = rate_limited = 0
    async with aiohttp.ClientSession(headers=HEADERS) as session:

        async def one(i: int) -> None:
            nonlocal errors, rate_limited
            body = b'{"entries":[{"email":"web%d@example.com"}]}' % i
            async with semaphore:
                for _ in range(3):  # the SDK's default: a first try and two retries
                    async with session.post(f"{url}/v1/dnc/import", data=body) as response:
                        await response.read()
                    if response.status != 429:
                        return
                    rate_limited += 1
                    await asyncio.sleep(retry_after(response.headers))
                errors += 1

        await asyncio.gather(*(one(i) for i in range(calls)))
    return {"errors": errors, "429s": rate_limited}


def singles(client: Any, calls: int, rate: int) -> dict[str, Any]:
    cell = Cell("singles", "fixed", Spelling(reset="epoch"))
    with fake_server("--latency-ms", str(LATENCY_MS), "--rate-limit", str(rate), *cell.server_args()) as url:
        started = time.monotonic()
        outcome = asyncio.run(client(url, calls))
        wall = time.monotonic() - started
    return {**outcome, "wall": wall, "ratio": wall / (calls / rate + LATENCY_MS / 1000)}


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


def chart(results: list[tuple[Cell, dict[str, Any], dict[str, Any]]]) -> None:
    import matplotlib as mpl  # noqa: PLC0415 - only the benchmark draws

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shown = [row for row in results if row[0].name in HARDEST]
    figure, axes = plt.subplots(len(shown), 2, figsize=(13, 2.3 * len(shown)), sharex=True, squeeze=False)
    horizon = max(max(at for at, _ in side["sends"]) for _, a, b in shown for side in (a, b)) + 0.5
    bins = [i * 0.1 for i in range(int(horizon / 0.1) + 2)]
    for row, (cell, sdk, loop) in enumerate(shown):
        for column, (label, side) in enumerate((("sendkit_async", sdk), ("aiohttp + semaphore(8)", loop))):
            axis = axes[row][column]
            ok = [at for at, status in side["sends"] if status != 429]
            refused = [at for at, status in side["sends"] if status == 429]
            axis.hist(
                [ok, refused], bins=bins, stacked=True, color=["#2b6cb0", "#e53e3e"], label=["sent", "429"]
            )
            axis.axhline(RATE * 0.1 * (1 - cell.tenant_share), color="black", linewidth=0.8, linestyle="--")
            title = f"{label}: {cell.name}  ({side['ratio']:.2f}x ideal, {side['429s']} x 429)"
            axis.set_title(title, fontsize=8)
            axis.set_ylim(0, 8.5)
            axis.set_ylabel("sends / 100 ms", fontsize=8)
            if row == 0 and column == 0:
                axis.legend(fontsize=7, loc="upper right")
    for axis in axes[-1]:
        axis.set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(CHART, dpi=90)


def side_by_side(label: str, sdk: dict[str, Any], loop: dict[str, Any], *, compared: bool = True) -> str:
    def cell(side: dict[str, Any]) -> str:
        share = side["429s"] / max(side["requests"], 1)
        return f"{side['ratio']:.2f} | {side['429s']} / {side['requests']} ({share:.0%}) | {side['lost']:,}"

    ahead = (
        ("yes" if sdk["wall"] < loop["wall"] else "**no**") if compared else "n/a (the loop takes the share)"
    )
    met = sdk["ratio"] <= 1.10 and sdk["429s"] <= 0.02 * sdk["requests"] and sdk["lost"] == 0
    return f"| {label} | {cell(sdk)} | {cell(loop)} | {ahead} | {'yes' if met else '**no**'} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--only", default="", help="run only the cells whose name contains this")
    args = parser.parse_args()

    ceiling = server_ceiling()
    print(f"\nfake server alone (no limit, no latency, own process): {ceiling:,.0f} entries/s ingested")
    print(f"the pacing runs need {RATE * 10_000:,} entries/s\n")

    print(
        f"{args.count:,} entries in 10,000-entry requests, {CONCURRENCY} in flight, "
        f"{LATENCY_MS} ms per batch, {RATE} requests/s; x ideal = wall / (requests / rate + one batch)\n"
    )
    print(
        "| limiter, header spelling | sendkit_async x ideal | 429s / requests | lost "
        "| semaphore loop x ideal | 429s / requests | lost | SDK ahead | target met |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |", flush=True)
    results = []
    for cell in [*CELLS, BLIND]:
        if args.only in cell.name:
            results.append((cell, run(sdk_import, cell, args.count), run(semaphore_import, cell, args.count)))
            print(side_by_side(cell.name, *results[-1][1:], compared=not cell.tenant_share), flush=True)
    short = Cell("short job", "fixed", Spelling(reset="epoch"))
    short_rows = (run(sdk_import, short, 300_000, 400), run(semaphore_import, short, 300_000, 400))
    print(side_by_side("short job: 300,000 entries, 400 ms per batch (fixed, epoch reset)", *short_rows))

    rate = 20
    print(
        f"\n{args.calls} concurrent single calls through one client, {rate} requests/s, fixed window, "
        f"epoch reset, ideal {args.calls / rate + LATENCY_MS / 1000:.2f} s\n"
    )
    print("| client | x ideal | 429s | calls that raised |")
    print("| --- | ---: | ---: | ---: |")
    for label, client in (
        ("sendkit_async (one SendKit, asyncio.gather)", sdk_singles),
        ("aiohttp + semaphore(8) + Retry-After, 2 retries", semaphore_singles),
    ):
        row = singles(client, args.calls, rate)
        print(f"| {label} | {row['ratio']:.2f} | {row['429s']} | {row['errors']} |")

    if any(cell.name in HARDEST for cell, _, _ in results):
        chart(results)
        print(f"\nchart: {CHART}")


if __name__ == "__main__":
    main()

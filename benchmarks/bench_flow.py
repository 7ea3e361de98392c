"""In flight follows the key: imports at long latencies, a saturating server, and listing at the key's rate.

Run with ``nox -s bench -- flow`` (or ``python benchmarks/bench_flow.py``;
``--full`` adds the 1,000,000-entry listing and export, ~25 minutes). The
fake server runs in its own process. Every row compares wall time with the
ideal (requests / rate + one round trip), side by side with the alternatives
in the same run:

* imports of 1,000,000 entries (100 batches; the batch time is per-entry
  service time on the server): the SDK with its defaults
  (``concurrency="auto"``), with ``concurrency=4`` (the old default), and an
  aiohttp loop under ``asyncio.Semaphore(8)`` that honours ``Retry-After``;
* a saturating server (4 requests served at once, 0.5 s each, the rest
  queued): throughput against its capacity, in flight (peak, and the 90th
  percentile after the first 4 s), and the median latency of an
  interactive call made every 0.5 s during the import against the unloaded one;
* listing and export (``client.dnc.list()``, ``sendkit-async dnc export``)
  against a 30-line aiohttp loop fetching ``page=1..N`` eight at a time,
  each checked to yield every entry exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from _harness import HEADERS, KEY, emails, fake_server, post_all, retry_after, stored, wire_batches
from click.testing import CliRunner

from sendkit_async import SendKit
from sendkit_async.cli._app import cli

ENTRIES = 1_000_000
BATCHES = ENTRIES // 10_000


class Tracker:
    """Requests in flight as aiohttp sees them (client side), for any client on this session."""

    def __init__(self) -> None:
        self.now = 0
        self.samples: list[tuple[float, int]] = []
        self.done: list[float] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._start)
        self.config.on_request_end.append(self._end)
        self.config.on_request_exception.append(self._end)

    async def _start(self, *_: Any) -> None:
        self.now += 1
        self.samples.append((time.monotonic(), self.now))

    async def _end(self, *_: Any) -> None:
        self.now -= 1
        self.done.append(time.monotonic())


# -- imports ---------------------------------------------------------------------


async def sdk_import(url: str, tracker: Tracker, **options: Any) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(trace_configs=[tracker.config]) as http,
        SendKit(api_key=KEY, base_url=url, session=http) as client,
    ):
        report = await client.dnc.import_bulk(emails(ENTRIES), **options)
    return {"429s": report.rate_limited}


async def loop_import(url: str, tracker: Tracker) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers=HEADERS, trace_configs=[tracker.config]) as session:
        refused = await post_all(session, url, wire_batches(ENTRIES))
    return {"429s": refused}


def imports(rate: int, batch_seconds: float) -> dict[str, dict[str, Any]]:
    per_entry_us = batch_seconds * 1e6 / 10_000
    args = ("--rate-limit", str(rate), "--latency-per-entry-us", f"{per_entry_us:g}")
    ideal = BATCHES / rate + batch_seconds
    rows: dict[str, dict[str, Any]] = {}
    for name, client in (
        ("sdk auto", sdk_import),
        ("sdk 4", lambda url, t: sdk_import(url, t, concurrency=4)),
        ("semaphore(8)", loop_import),
    ):
        with fake_server(*args) as url:
            tracker = Tracker()
            started = time.monotonic()
            outcome = asyncio.run(client(url, tracker))
            wall = time.monotonic() - started
            lost = ENTRIES - stored(url)
        peak = max(n for _, n in tracker.samples)
        rows[name] = {**outcome, "wall": wall, "ratio": wall / ideal, "lost": lost, "peak": peak}
    return rows


# -- a saturating server -----------------------------------------------------------


async def saturating_run(url: str, kind: str) -> dict[str, Any]:
    tracker = Tracker()
    waits: list[float] = []
    unloaded: list[float] = []
    async with aiohttp.ClientSession(headers=HEADERS, trace_configs=[tracker.config]) as http:
        sdk = SendKit(api_key=KEY, base_url=url, session=http)
        async with sdk as client:

            async def interactive() -> float:
                asked = time.monotonic()
                if kind == "loop":
                    async with http.get(f"{url}/v1/dnc", params={"limit": "1"}) as response:
                        await response.read()
                else:
                    await client.dnc.get_page(limit=1)
                return time.monotonic() - asked

            unloaded.extend([await interactive() for _ in range(4)])

            async def poll(stop: asyncio.Event) -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.5)
                    waits.append(await interactive())

            stop = asyncio.Event()
            poller = asyncio.create_task(poll(stop))
            started = time.monotonic()
            tracker.samples.clear()
            tracker.done.clear()
            if kind == "loop":
                await loop_import(url, tracker)
            else:
                options = {} if kind == "sdk auto" else {"concurrency": 4}
                await client.dnc.import_bulk(emails(ENTRIES), **options)
            elapsed = time.monotonic() - started
            stop.set()
            await poller
    steady = [n for t, n in tracker.samples if t >= started + 4]
    return {
        "throughput": (BATCHES + len(waits)) / elapsed,
        "peak": max(n for _, n in tracker.samples),
        "p90": statistics.quantiles(steady, n=10)[-1] if len(steady) > 1 else float("nan"),
        "interactive": statistics.median(waits) if waits else float("nan"),
        "unloaded": statistics.median(unloaded),
    }


def saturating() -> dict[str, dict[str, Any]]:
    args = ("--capacity", "4", "--latency-ms", "500", "--rate-limit", "20")
    rows = {}
    for kind in ("sdk auto", "sdk 4", "loop"):
        with fake_server(*args) as url:
            rows[kind] = asyncio.run(saturating_run(url, kind))
    return rows


# -- listing -----------------------------------------------------------------------


async def sdk_list(url: str) -> list[str]:
    async with SendKit(api_key=KEY, base_url=url) as client:
        return [entry.id async for entry in client.dnc.list()]


def cli_export(url: str) -> list[str]:
    """``sendkit-async dnc export`` as its command runs, in this process (no interpreter start-up timed)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "all.jsonl"
        env = {"SENDKIT_API_KEY": KEY, "SENDKIT_BASE_URL": url}
        result = CliRunner().invoke(cli, ["dnc", "export", str(path)], env=env, catch_exceptions=False)
        if result.exit_code:
            raise RuntimeError(result.stderr)
        return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


async def loop_list(url: str) -> list[str]:
    """What a careful user writes by hand: page 1 for the count, then pages 2..N eight at a time."""
    semaphore = asyncio.Semaphore(8)
    async with aiohttp.ClientSession(headers=HEADERS) as session:

        async def page(number: int) -> list[str]:
            async with semaphore:
                while True:
                    params = {"page": str(number), "limit": "100"}
                    async with session.get(f"{url}/v1/dnc", params=params) as response:
                        body = await response.read()
                    if response.status != 429:
                        data = orjson.loads(body)
                        pages[0] = data["pagination"]["pages"]
                        return [item["_id"] for item in data["data"]]
                    await asyncio.sleep(retry_after(response.headers))

        pages = [0]
        first = await page(1)
        rest = await asyncio.gather(*(page(n) for n in range(2, pages[0] + 1)))
    return first + [i for part in rest for i in part]


def listing(count: int) -> dict[str, dict[str, Any]]:
    args = ("--dnc-entries", str(count), "--rate-limit", "20", "--latency-ms", "200")
    ideal = -(-count // 100) / 20 + 0.2
    rows = {}
    for name, walk in (
        ("sdk list()", lambda url: asyncio.run(sdk_list(url))),
        ("sdk dnc export", cli_export),
        ("page loop(8)", lambda url: asyncio.run(loop_list(url))),
    ):
        with fake_server(*args) as url:
            started = time.monotonic()
            ids = walk(url)
            wall = time.monotonic() - started
        once = len(ids) == len(set(ids)) == count
        rows[name] = {"wall": wall, "ratio": wall / ideal, "once": once}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="add the 1,000,000-entry listing (~25 min)")
    parser.add_argument("--only", choices=["imports", "saturating", "listing"], help="one table")
    args = parser.parse_args()
    if args.only in (None, "imports"):
        print("\nimport 1,000,000 entries (100 requests): wall / ideal (ideal = requests / rate + one batch)")
        print(f"{'rate, batch time':<20} {'sdk auto':>22} {'sdk concurrency=4':>22} {'semaphore(8)':>22}")
        for rate, seconds in ((20, 0.1), (20, 1.0), (20, 2.0), (5, 0.1)):
            rows = imports(rate, seconds)
            cells = [
                f"{r['ratio']:.2f}x {r['429s']}x429 pk{r['peak']}"
                + ("" if not r["lost"] else f" LOST {r['lost']}")
                for r in rows.values()
            ]
            print(f"{f'{rate}/s, {seconds:g} s':<20} " + " ".join(f"{c:>22}" for c in cells), flush=True)
    if args.only in (None, "saturating"):
        print("\nsaturating server (4 at once, 0.5 s each, capacity 8 req/s; rate limit 20/s), 100 batches")
        print(f"{'client':<14} {'throughput':>14} {'peak':>6} {'p90 >4s':>8} {'interactive p50':>22}")
        for kind, row in saturating().items():
            share = row["throughput"] / 8
            interactive = f"{row['interactive']:.2f} s ({row['interactive'] / row['unloaded']:.2f}x)"
            print(
                f"{kind:<14} {row['throughput']:>6.2f}/s {share:>4.0%} {row['peak']:>6} {row['p90']:>8.0f} "
                f"{interactive:>22}",
                flush=True,
            )
    if args.only in (None, "listing"):
        print("\nlisting at 20 req/s, 200 ms per page: wall / ideal (ideal = pages / rate + one latency)")
        counts = (20_000, 1_000_000) if args.full else (20_000,)
        for count in counts:
            rows = listing(count)
            cells = [f"{r['ratio']:.2f}x {'once' if r['once'] else 'WRONG'}" for r in rows.values()]
            names = " ".join(f"{n:>16}" for n in rows)
            print(f"{'entries':<12} {names}")
            print(f"{count:<12,} " + " ".join(f"{c:>16}" for c in cells), flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

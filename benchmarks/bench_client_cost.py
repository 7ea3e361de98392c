"""What the client itself costs per entry: the SDK beside a hand-written loop, against a sink server.

Run with ``nox -s bench -- client_cost`` (or ``python benchmarks/bench_client_cost.py``).
The sink (``_sink.py``) runs in its own process and only counts entries. Each
client runs in a fresh process of its own, so its CPU time and peak RSS are
its alone. Input: realistic addresses (mixed case, padded with spaces).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from sendkit_async import SendKit

KEY = "sk_test_sink"
SINK = Path(__file__).with_name("_sink.py")


def realistic(count: int) -> Iterator[str]:
    return (f"  User.{i}@Example.COM " if i % 2 else f"user{i}@example.com\t" for i in range(count))


def realistic_dicts(count: int) -> Iterator[dict[str, str]]:
    return ({"email": email, "type": "email"} for email in realistic(count))


@contextlib.contextmanager
def sink(*args: str) -> Iterator[str]:
    process = subprocess.Popen([sys.executable, str(SINK), *args], stdout=subprocess.PIPE, text=True)
    try:
        if process.stdout is None:
            raise RuntimeError("the sink's output is not piped")
        yield process.stdout.readline().rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


async def hand_loop(url: str, count: int, *, dedupe: bool = False, dicts: bool = False) -> None:
    """Strip, lower, type by '@', batch 10,000, post with orjson: eight in flight.

    With ``dedupe``, a Python set drops repeats; with ``dicts``, the input is
    ``{"email": ..., "type": ...}`` mappings, normalised the same way.
    """
    headers = {"Content-Type": "application/json", "X-Api-Key": KEY, "Authorization": f"Bearer {KEY}"}
    semaphore = asyncio.Semaphore(8)
    async with aiohttp.ClientSession(headers=headers) as session:

        async def post(body: bytes) -> None:
            try:
                async with session.post(f"{url}/v1/dnc/import", data=body) as response:
                    await response.read()
            finally:
                semaphore.release()

        tasks = []
        batch: list[dict[str, str]] = []
        seen: set[str] = set()
        for raw in realistic_dicts(count) if dicts else realistic(count):
            if dicts:
                email = raw["email"].strip().lower()  # type: ignore[index]
                kind = raw.get("type") or ("email" if "@" in email else "domain")  # type: ignore[union-attr]
            else:
                email = raw.strip().lower()  # type: ignore[union-attr]
                kind = "email" if "@" in email else "domain"
            if dedupe:
                if email in seen:
                    continue
                seen.add(email)
            batch.append({"email": email, "type": kind, "reason": "import"})
            if len(batch) == 10_000:
                await semaphore.acquire()
                tasks.append(asyncio.create_task(post(orjson.dumps({"entries": batch}))))
                batch = []
        if batch:
            await semaphore.acquire()
            tasks.append(asyncio.create_task(post(orjson.dumps({"entries": batch}))))
        await asyncio.gather(*tasks)


async def sdk(url: str, count: int, *, dedupe: bool, dicts: bool = False) -> None:
    source = realistic_dicts(count) if dicts else realistic(count)
    async with SendKit(api_key=KEY, base_url=url) as client:
        report = await client.dnc.import_bulk(source, dedupe=dedupe, concurrency=8)
    if report.imported != count:
        raise RuntimeError(f"lost entries: {report.imported} of {count}")


async def with_timer(job: Any) -> list[float]:
    """Run ``job`` beside a 5 ms timer; return how late each tick was, in ms."""
    lateness: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lateness.append((time.perf_counter() - started - 0.005) * 1000)

    ticker = asyncio.create_task(tick())
    try:
        await job
    finally:
        done.set()
        await ticker
    return lateness


def child(kind: str, url: str, count: int) -> dict[str, Any]:
    jobs = {
        "hand": lambda: hand_loop(url, count),
        "hand-set": lambda: hand_loop(url, count, dedupe=True),
        "sdk": lambda: sdk(url, count, dedupe=False),
        "sdk-dedupe": lambda: sdk(url, count, dedupe=True),
        "hand-dicts": lambda: hand_loop(url, count, dicts=True),
        "sdk-dicts": lambda: sdk(url, count, dedupe=False, dicts=True),
        "sdk-dicts-dedupe": lambda: sdk(url, count, dedupe=True, dicts=True),
    }
    before = resource.getrusage(resource.RUSAGE_SELF)  # after the imports: the job's CPU only
    started = time.perf_counter()
    lateness = asyncio.run(with_timer(jobs[kind]()))
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    lateness.sort()
    return {
        "cpu_us": cpu / count * 1e6,
        "eps": count / wall,
        "rss": usage.ru_maxrss / 1024,
        "p99": lateness[int(len(lateness) * 0.99)] if lateness else 0.0,
        "worst": lateness[-1] if lateness else 0.0,
    }


def measure(kind: str, count: int, *sink_args: str) -> dict[str, Any]:
    with sink(*sink_args) as url:
        argv = [sys.executable, __file__, "--child", kind, url, str(count)]
        result = json.loads(
            subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
        )
        with urllib.request.urlopen(f"{url}/total", timeout=30) as answer:  # noqa: S310 - loopback
            totals = json.loads(answer.read())
    if totals["entries"] != count:
        raise RuntimeError(f"{kind}: the sink received {totals['entries']} of {count}")
    return {**result, "refused": totals["refused"]}


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each field's median over the runs."""
    return {name: statistics.median(r[name] for r in results) for name in results[0]}


def paced(rate: int, repeat: int) -> None:
    """One process against a key allowed ``rate`` imports a second: wall time over its ideal."""
    count = rate * 10 * 10_000  # ten seconds of requests of 10,000 at the full rate
    ideal = count / 10_000 / rate
    print(
        f"\nOne process, a key allowed {rate} requests/s (the sink's fixed windows, X-RateLimit-* and "
        f"Retry-After), {count:,} entries in requests of 10,000, defaults (dedupe on); ideal "
        f"{ideal:.0f} s; medians of {repeat}\n"
    )
    print("| input | x ideal | 429s | CPU µs / entry | the client's share of a core | no limit: x ideal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, kind in (("strings", "sdk-dedupe"), ("dicts", "sdk-dicts-dedupe")):
        limited = median_of([measure(kind, count, "--rate-limit", str(rate)) for _ in range(repeat)])
        free = median_of([measure(kind, count) for _ in range(repeat)])
        wall = count / limited["eps"]
        print(
            f"| {label} | {wall / ideal:.2f} | {limited['refused']:.0f} | {limited['cpu_us']:.2f} | "
            f"{limited['cpu_us'] * count / 1e6 / wall:.0%} | {count / free['eps'] / ideal:.2f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2_000_000)
    parser.add_argument("--memory", type=int, nargs="*", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per client; medians shown")
    parser.add_argument("--rate", type=int, default=20, help="the limited key's requests a second (0: skip)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "URL", "COUNT"))
    args = parser.parse_args()
    if args.child:
        kind, url, count = args.child
        print(json.dumps(child(kind, url, int(count))))
        return

    clients = (
        ("strings: hand-written aiohttp + orjson loop", "hand"),
        ("strings: the hand loop + a Python set for dedupe", "hand-set"),
        ("strings: import_bulk, dedupe off", "sdk"),
        ("strings: import_bulk, dedupe on (the default)", "sdk-dedupe"),
        ("dicts: the hand loop, same normalisation", "hand-dicts"),
        ("dicts: import_bulk, dedupe off", "sdk-dicts"),
        ("dicts: import_bulk, dedupe on", "sdk-dicts-dedupe"),
    )
    # Interleaved rounds, each figure the median of its client's runs: the
    # machine is shared, and one slow moment should not decide a ratio.
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for _, kind in clients}
    for _ in range(args.repeat):
        for _, kind in clients:
            runs[kind].append(measure(kind, args.count))
    rows = [(label, median_of(runs[kind])) for label, kind in clients]
    hand, hand_dicts = rows[0][1]["cpu_us"], rows[4][1]["cpu_us"]
    print(
        f"\n{args.count:,} mixed-case, padded addresses into a sink server (its own process); "
        f"medians of {args.repeat} interleaved runs\n"
    )
    print(
        "| client | CPU µs / entry | vs the hand loop (its input kind, no dedupe) | entries/s "
        "| 5 ms timer late, p99 / worst |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, row in rows:
        base = hand_dicts if label.startswith("dicts") else hand
        print(
            f"| {label} | {row['cpu_us']:.2f} | {row['cpu_us'] / base:.2f}x | {row['eps']:,.0f} | "
            f"{row['p99']:.1f} / {row['worst']:.1f} ms |"
        )
    if args.rate:
        paced(args.rate, args.repeat)
    if args.memory:
        print(
            "\nPeak RSS of the importing process, and bytes per distinct address that dedupe adds "
            "(over the same run without it); one run each\n"
        )
        print(
            "| distinct addresses | import_bulk, dedupe off | dedupe on | its cost per address "
            "| hand loop + a Python set | the set's cost per address | time, dedupe on / off |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for count in args.memory:
            off, on, hand_set, plain = (
                measure("sdk", count),
                measure("sdk-dedupe", count),
                measure("hand-set", count),
                measure("hand", count),
            )
            per_address = (on["rss"] - off["rss"]) * 1024 * 1024 / count
            set_per_address = (hand_set["rss"] - plain["rss"]) * 1024 * 1024 / count
            print(
                f"| {count:,} | {off['rss']:.0f} MiB | {on['rss']:.0f} MiB | {per_address:.0f} B | "
                f"{hand_set['rss']:.0f} MiB | {set_per_address:.0f} B | {off['eps'] / on['eps']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()

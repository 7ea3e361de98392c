"""Four CLI processes on one key, one budget through Redis: what the person waiting sees.

Run with ``nox -s bench -- shared`` (or ``python benchmarks/bench_shared.py``).
The fake server runs in its own process (20 requests/s, 150 ms per batch); a
real redis-server (from PATH) holds the shared budget. For two cells of the
pacing matrix (a fixed window with whole epoch-second resets, and a token
bucket of burst 1 with whole-second resets from now) it times, from the first
process's start to the last one's exit:

* one ``sendkit-async dnc import`` of 200,000 addresses;
* four of 50,000 each, started together, sharing ``--redis``;
* four of 50,000 each with their own local budgets (what ``--redis`` prevents).

Batches are 1,000 entries, so the run is the same 200 requests at 20 per
second as with 10,000-entry batches, but needs 20,000 entries/s of CPU, not
200,000: on a 2-core machine four deduping clients and the fake's validation at
200,000 entries/s saturate both cores, and the figure would measure the CPU,
not the pacing. Ideal: 200 requests / 20 per second + one batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _harness import KEY, fake_server, stored

from sendkit_async.testing._limits import Spelling
from sendkit_async.testing._matrix import Cell

PROCESSES = 4
TOTAL = 200_000
BATCH = 1_000
RATE = 20
LATENCY_MS = 150
CELLS = [
    Cell("fixed window, reset = whole epoch second", "fixed", Spelling(reset="epoch")),
    Cell("token bucket burst 1, reset = whole seconds from now", "token", Spelling(reset="seconds")),
]


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


def inputs(folder: Path, parts: int) -> list[Path]:
    """``TOTAL`` distinct addresses in ``parts`` files of one address per line."""
    per = TOTAL // parts
    files = []
    for part in range(parts):
        path = folder / f"part{parts}-{part}.txt"
        path.write_text("".join(f"p{part}-user{i}@example.com\n" for i in range(per)))
        files.append(path)
    return files


def run(cell: Cell, files: list[Path], redis_url: str | None) -> dict[str, Any]:
    cli = [sys.executable, "-m", "sendkit_async"]
    env = {**os.environ, "SENDKIT_API_KEY": KEY}
    args = ("--latency-ms", str(LATENCY_MS), "--rate-limit", str(RATE), *cell.server_args())
    with fake_server(*args) as url:
        root = [*cli, "--base-url", url, *(("--redis", redis_url) if redis_url else ())]
        started = time.monotonic()
        workers = [
            subprocess.Popen(
                [
                    *root,
                    "dnc",
                    "import",
                    str(path),
                    "--concurrency",
                    "8",
                    "--batch-size",
                    str(BATCH),
                    "--json",
                ],
                stdout=subprocess.PIPE,
                env=env,
                text=True,
            )
            for path in files
        ]
        reports = [json.loads(w.communicate(timeout=900)[0]) for w in workers]
        wall = time.monotonic() - started
        lost = TOTAL - stored(url)
    requests = sum(r["requests"] for r in reports)
    rate_limited = sum(r["rate_limited"] for r in reports)
    ideal = -(-TOTAL // BATCH) / RATE + LATENCY_MS / 1000
    return {"ratio": wall / ideal, "wall": wall, "429s": rate_limited, "requests": requests, "lost": lost}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder, redis_server() as redis_url:
        one, four = inputs(Path(folder), 1), inputs(Path(folder), PROCESSES)
        for cell in CELLS:
            rows.append((cell.name, f"one process, {TOTAL:,} entries", run(cell, one, None)))
            rows.append((cell.name, "four processes, one budget in Redis", run(cell, four, redis_url)))
            rows.append((cell.name, "four processes, four local budgets", run(cell, four, None)))
    ideal = TOTAL // BATCH / RATE + LATENCY_MS / 1000
    print(
        f"\n{TOTAL:,} entries in {BATCH:,}-entry batches on one key, {RATE} requests/s, "
        f"{LATENCY_MS} ms per batch, 8 in flight a process; from the first start to the last exit; "
        f"ideal {ideal:.2f} s\n"
    )
    print("| limiter, header spelling | processes | x ideal | 429s / requests | lost entries |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, label, row in rows:
        share = f"{row['429s']} / {row['requests']} ({row['429s'] / row['requests']:.1%})"
        print(f"| {name} | {label} | {row['ratio']:.2f} | {share} | {row['lost']:,} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()

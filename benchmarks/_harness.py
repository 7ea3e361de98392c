"""Shared pieces of the benchmarks: a fake server in its own process, and input generators."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import aiohttp
import orjson
import requests

from sendkit_async._fields import parse_retry_after
from sendkit_async.testing import DEFAULT_WORKSPACE_KEY

KEY = DEFAULT_WORKSPACE_KEY
HEADERS = {"Content-Type": "application/json", "X-Api-Key": KEY, "Authorization": f"Bearer {KEY}"}


@contextlib.contextmanager
def fake_server(*args: str) -> Iterator[str]:
    """Run ``python -m sendkit_async.testing`` on a free port; yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sendkit_async.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if process.stdout is None:
            raise RuntimeError("the fake server's output is not piped")
        line = process.stdout.readline()
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def stored(url: str) -> int:
    """How many entries the server holds (waiting out a rate-limit window if need be)."""
    for _ in range(10):
        answer = requests.get(f"{url}/v1/dnc", params={"limit": 1}, headers=HEADERS, timeout=30)
        if answer.status_code != 429:
            return int(answer.json()["pagination"]["total"])
        time.sleep(parse_retry_after(answer.headers, time.time()) or 1.0)
    raise RuntimeError("the fake server kept answering 429")


def emails(count: int) -> Iterator[str]:
    """``count`` distinct addresses, generated lazily."""
    return (f"user{i}@example.com" for i in range(count))


def wire_batches(count: int, size: int = 10_000) -> Iterator[bytes]:
    """The seed page's body shape, 10,000 entries a body, serialised."""
    batch: list[dict[str, str]] = []
    for email in emails(count):
        batch.append({"email": email, "type": "email", "reason": "import"})
        if len(batch) == size:
            yield orjson.dumps({"entries": batch})
            batch = []
    if batch:
        yield orjson.dumps({"entries": batch})


def retry_after(headers: Any) -> float:
    """``Retry-After`` in seconds, as a hand-written loop reads it (1 s when absent or a date)."""
    try:
        return float(headers.get("Retry-After", "1"))
    except ValueError:
        return 1.0


async def post_all(
    session: aiohttp.ClientSession, url: str, bodies: Iterable[bytes], concurrency: int = 8
) -> int:
    """The hand-written loop: POST every body under a semaphore, sleeping on ``Retry-After`` after a 429.

    Returns the number of 429s met.
    """
    semaphore = asyncio.Semaphore(concurrency)
    refused = 0

    async def post(body: bytes) -> None:
        nonlocal refused
        async with semaphore:
            while True:
                async with session.post(f"{url}/v1/dnc/import", data=body) as response:
                    await response.read()
                if response.status != 429:
                    return
                refused += 1
                await asyncio.sleep(retry_after(response.headers))

    await asyncio.gather(*(post(b) for b in bodies))
    return refused

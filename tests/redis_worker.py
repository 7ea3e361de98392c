"""One worker process of the shared-budget tests: import COUNT addresses, print its report as JSON.

Run as ``python -m tests.redis_worker BASE_URL REDIS_URL PREFIX COUNT``.
"""

import asyncio
import json
import sys
import time

from sendkit_async import SendKit
from sendkit_async.budget import RedisBudget
from sendkit_async.testing import DEFAULT_WORKSPACE_KEY


async def main(base_url: str, redis_url: str, prefix: str, count: int) -> None:
    async with (
        RedisBudget.from_url(redis_url, timeout=0.2, retry_every=0.3) as budget,
        SendKit(api_key=DEFAULT_WORKSPACE_KEY, base_url=base_url, rate_budget=budget) as client,
    ):
        print("started", flush=True)
        started = time.monotonic()
        report = await client.dnc.import_bulk(
            (f"{prefix}{i}@example.com" for i in range(count)), batch_size=100, concurrency=4
        )
        outcome = {
            "elapsed": time.monotonic() - started,
            "read": report.read,
            "imported": report.imported,
            "balanced": report.balanced,
            "requests": report.requests,
            "rate_limited": report.rate_limited,
            "failed": len(report.failed),
            "shared_at_end": budget.shared,
        }
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))

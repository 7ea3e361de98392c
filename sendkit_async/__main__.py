"""``python -m sendkit_async``: import a small sample into an embedded fake server."""

from __future__ import annotations

import asyncio
import sys

from sendkit_async.testing import FakeSendKit


async def demo() -> None:
    """Import a handful of entries (one of them a repeat) and list them back."""
    async with FakeSendKit(latency=0.01) as fake, fake.client() as client:
        sample = ["bounce1@example.com", "Bounce2@Example.com", "badcompany.com", "bounce1@example.com"]
        result = await client.dnc.import_entries(sample)
        print(f"imported {result.imported}, skipped {result.skipped} of {len(sample)}")  # noqa: T201
        async for entry in client.dnc.list():
            print(f"  {entry.entry_type:<6} {entry.email:<24} {entry.reason}")  # noqa: T201


def main() -> int:
    """Entry point."""
    asyncio.run(demo())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The installed wheel works away from the source tree (``nox -s release`` runs this from an empty folder).

It checks that the package comes from the venv, not a checkout; that the
files a wheel may forget are in it (``py.typed``, the budget's Lua script);
that ``sendkit-async demo`` runs; and that a Redis-budget import against a
real redis-server balances.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path


def main() -> None:
    import sendkit_async  # noqa: PLC0415

    where = Path(sendkit_async.__file__).resolve()
    assert "site-packages" in where.parts, f"imported from {where}, not from the installed wheel"
    package = resources.files("sendkit_async")
    assert (package / "py.typed").is_file(), "py.typed is missing from the wheel"
    assert (package / "_budget" / "budget.lua").is_file(), "the budget's Lua script is missing"
    demo = Path(sys.executable).with_name("sendkit-async")
    subprocess.run([str(demo), "demo", "--entries", "20000"], check=True, timeout=300)
    print(f"demo ran from {where.parent}")
    binary = shutil.which("redis-server")
    assert binary, "the release check needs redis-server on PATH"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        asyncio.run(redis_import(f"redis://127.0.0.1:{port}/0"))
    finally:
        server.terminate()
        server.wait(timeout=10)


async def redis_import(url: str) -> None:
    from sendkit_async.budget import RedisBudget  # noqa: PLC0415
    from sendkit_async.testing import FakeSendKit  # noqa: PLC0415

    async with (
        RedisBudget.from_url(url) as budget,
        FakeSendKit(rate_limit=50) as fake,
        fake.client(rate_budget=budget) as client,
    ):
        entries = [f"user{n}@example.com" for n in range(5_000)] + ["not an address"]
        report = await client.dnc.import_bulk(entries, batch_size=1_000)
        assert report.balanced, report
        assert report.imported == 5_000
        assert len(report.rejected) == 1
        assert budget.shared, "the budget fell back to local pacing"
    print(f"a Redis-budget import balanced: {report.imported} imported, 1 rejected")


if __name__ == "__main__":
    main()

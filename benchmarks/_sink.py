"""A near-zero-cost SendKit stand-in: counts the entries of each import and validates nothing.

Run as ``python benchmarks/_sink.py``; prints ``sink listening on URL``. It answers
with generous rate-limit headers (as the real API always sends some), so the
client's budget paces nothing and the client's own cost is what is measured.
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web

HEADERS = {"X-RateLimit-Limit": "1000000", "X-RateLimit-Remaining": "999999", "X-RateLimit-Reset": "1.000"}


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    count = len(orjson.loads(body)["entries"])
    request.app["entries"][0] += count
    answer = orjson.dumps({"success": True, "data": {"imported": count, "skipped": 0}})
    return web.Response(body=answer, content_type="application/json", headers=HEADERS)


async def total(request: web.Request) -> web.Response:
    return web.json_response({"entries": request.app["entries"][0]})


async def main() -> None:
    app = web.Application(client_max_size=64 * 1024**2)
    app["entries"] = [0]
    app.router.add_post("/v1/dnc/import", handle)
    app.router.add_get("/total", total)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
    print(f"sink listening on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)

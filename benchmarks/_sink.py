"""A near-zero-cost SendKit stand-in: counts the entries of each import and validates nothing.

Run as ``python benchmarks/_sink.py``; prints ``sink listening on URL``. It answers
with generous rate-limit headers (as the real API always sends some), so the
client's budget paces nothing and the client's own cost is what is measured.
With ``--rate-limit N`` it allows N imports a second in windows aligned to the
clock's seconds, answering the rest 429 with ``Retry-After``, and counts each
window's ``X-RateLimit-*`` fields down: a limited key the server is never too
slow to serve.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time

import orjson
from aiohttp import web

HEADERS = {"X-RateLimit-Limit": "1000000", "X-RateLimit-Remaining": "999999", "X-RateLimit-Reset": "1.000"}


def _admitted(app: web.Application) -> dict[str, str] | None:
    """This window's fields if the request is within the limit, ``None`` if it is refused."""
    state = app["state"]
    limit = state["limit"]
    if limit is None:
        return HEADERS
    now = time.time()
    window = math.floor(now)
    if state["window"] != window:
        state["window"], state["used"] = window, 0
    reset = f"{window + 1 - now:.3f}"
    if state["used"] >= limit:
        return None
    state["used"] += 1
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(limit - state["used"]),
        "X-RateLimit-Reset": reset,
    }


async def handle(request: web.Request) -> web.Response:
    headers = _admitted(request.app)
    if headers is None:
        request.app["state"]["refused"] += 1
        wait = f"{math.floor(time.time()) + 1 - time.time():.3f}"
        refusal = {
            "X-RateLimit-Limit": str(request.app["state"]["limit"]),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": wait,
        }
        return web.json_response(
            {"error": "Too Many Requests"}, status=429, headers={**refusal, "Retry-After": "1"}
        )
    body = await request.read()
    count = len(orjson.loads(body)["entries"])
    request.app["entries"][0] += count
    answer = orjson.dumps({"success": True, "data": {"imported": count, "skipped": 0}})
    return web.Response(body=answer, content_type="application/json", headers=headers)


async def total(request: web.Request) -> web.Response:
    return web.json_response(
        {"entries": request.app["entries"][0], "refused": request.app["state"]["refused"]}
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate-limit", type=int, default=None, help="imports a second (default: no limit)")
    app = web.Application(client_max_size=64 * 1024**2)
    app["state"] = {"limit": parser.parse_args().rate_limit, "window": None, "used": 0, "refused": 0}
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

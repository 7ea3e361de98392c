"""Rate-limited proxies to an API, as Python shops put them in front: slowapi and fastapi-limiter on uvicorn.

Run with ``uvicorn tests.limiter_apps:app``; the environment picks the limiter:

* ``SENDKIT_UPSTREAM``: the API to forward to (the fake server).
* ``SENDKIT_LIMITER``: ``slowapi-fixed``, ``slowapi-moving`` (slowapi on ``limits``, with its
  ``X-RateLimit-*`` headers and ``Retry-After``) or ``fastapi-limiter`` (0.1.x, a Redis fixed
  window answering ``Retry-After`` alone; ``SENDKIT_LIMITER_REDIS`` names the Redis).
* ``SENDKIT_LIMITER_RATE``: requests per second per API key (default 10).

The key is the ``X-Api-Key`` header, as an API limits per key.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import Depends, FastAPI, Request, Response

UPSTREAM = os.environ.get("SENDKIT_UPSTREAM", "http://127.0.0.1:8080")
LIMITER = os.environ.get("SENDKIT_LIMITER", "slowapi-fixed")
RATE = int(os.environ.get("SENDKIT_LIMITER_RATE", "10"))
PASSED = ("x-api-key", "authorization", "x-workspace-id", "content-type", "accept")
KEPT = ("content-type", "x-request-id")


def _key(request: Request) -> str:
    return request.headers.get("X-Api-Key", "")


class _Forward:
    """One pooled session to the upstream for the app's life."""

    session: aiohttp.ClientSession | None = None

    async def __call__(self, request: Request) -> Response:
        assert self.session is not None
        body = await request.body()
        headers = {name: value for name, value in request.headers.items() if name.lower() in PASSED}
        async with self.session.request(
            request.method,
            f"{UPSTREAM}{request.url.path}",
            params=list(request.query_params.multi_items()),
            data=body,
            headers=headers,
            allow_redirects=False,
        ) as answer:
            data = await answer.read()
            kept = {name: value for name, value in answer.headers.items() if name.lower() in KEPT}
            return Response(content=data, status_code=answer.status, headers=kept)


forward = _Forward()
METHODS = ["GET", "POST", "PATCH"]


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        forward.session = session
        if LIMITER == "fastapi-limiter":
            import redis.asyncio as aioredis  # noqa: PLC0415 - only this limiter needs it
            from fastapi_limiter import FastAPILimiter  # noqa: PLC0415

            redis = aioredis.from_url(os.environ["SENDKIT_LIMITER_REDIS"])
            await FastAPILimiter.init(redis, identifier=_by_key)
            try:
                yield
            finally:
                await redis.aclose()
        else:
            yield


async def _by_key(request: Request) -> str:
    return _key(request)


app = FastAPI(lifespan=_lifespan)

if LIMITER.startswith("slowapi"):
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded

    limiter = Limiter(
        key_func=_key,
        strategy="moving-window" if LIMITER == "slowapi-moving" else "fixed-window",
        headers_enabled=True,
        storage_uri="memory://",
    )
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.api_route("/{path:path}", methods=METHODS)
    @limiter.limit(f"{RATE}/second")
    async def limited(request: Request, path: str, response: Response) -> Response:  # noqa: ARG001
        return await forward(request)

else:
    from fastapi_limiter.depends import RateLimiter

    @app.api_route(
        "/{path:path}", methods=METHODS, dependencies=[Depends(RateLimiter(times=RATE, seconds=1))]
    )
    async def limited(request: Request, path: str) -> Response:  # noqa: ARG001
        return await forward(request)

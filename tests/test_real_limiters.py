"""Imports behind the rate limiters real APIs sit behind: nginx, HAProxy, slowapi, fastapi-limiter.

Real components, not ours: Debian's nginx and HAProxy, and slowapi and
fastapi-limiter apps on uvicorn (``tests/limiters.py``), each started on a free
port in front of the fake server at 20 requests/s per key. Each import must
store every entry, lose none to a limiter's 503 or 403, count every refusal
the limiter made, and be refused in few of its requests. How fast is the
benchmark's business (``nox -s bench -- limiters``), not the tests'.

``.ci/run`` installs nginx and HAProxy; elsewhere a missing one skips its
tests, unless ``SENDKIT_REQUIRE_LIMITERS=1`` says it must be there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from sendkit_async import ImportReport, SendKit
from sendkit_async.testing import DEFAULT_WORKSPACE_KEY, FakeSendKit

from . import limiters

pytestmark = pytest.mark.slow

RATE = 20
ENTRIES = 2_000
BATCH = 50  # 40 requests: two seconds at the limit


def _need(binary: str) -> None:
    if not limiters.available(binary):
        if os.environ.get("SENDKIT_REQUIRE_LIMITERS") == "1":
            pytest.fail(f"{binary} is not installed, and SENDKIT_REQUIRE_LIMITERS=1")
        pytest.skip(f"{binary} is not installed (.ci/run installs it)")


Front = Callable[[str, str | None], AbstractContextManager[str]]
FRONTS: dict[str, tuple[str, Front, int]] = {
    "nginx, no burst, 429, no fields": ("nginx", lambda up, _r: limiters.nginx(up, rate=RATE), 429),
    "nginx, its default 503": ("nginx", lambda up, _r: limiters.nginx(up, rate=RATE, status=503), 503),
    "nginx, Retry-After: 1": ("nginx", lambda up, _r: limiters.nginx(up, rate=RATE, retry_after="1"), 429),
    "nginx, burst 10 nodelay": (
        "nginx",
        lambda up, _r: limiters.nginx(up, rate=RATE, burst=10, nodelay=True),
        429,
    ),
    "HAProxy, http_req_rate(1s)": ("haproxy", lambda up, _r: limiters.haproxy(up, rate=RATE), 429),
    "slowapi, fixed window": (
        "",
        lambda up, _r: limiters.python_limiter(up, "slowapi-fixed", rate=RATE),
        429,
    ),
    "slowapi, moving window": (
        "",
        lambda up, _r: limiters.python_limiter(up, "slowapi-moving", rate=RATE),
        429,
    ),
    "fastapi-limiter, Redis": (
        "",
        lambda up, redis: limiters.python_limiter(up, "fastapi-limiter", rate=RATE, redis_url=redis),
        429,
    ),
}


@pytest.fixture(params=list(FRONTS), ids=list(FRONTS))
def front(request: pytest.FixtureRequest) -> tuple[str, Front, int, str | None]:
    binary, start, status = FRONTS[request.param]
    if binary:
        _need(binary)
    redis = request.getfixturevalue("redis_server").url if "fastapi" in request.param else None
    return request.param, start, status, redis


async def test_an_import_behind_a_real_limiter_stores_everything_and_counts_every_refusal(front):
    name, start, status, redis = front
    budget = limiters.StatusRecorder()
    # The API itself sends no rate-limit fields here: the limiter's are the only ones.
    async with FakeSendKit(latency=0.02, rate_headers="none") as fake:
        with start(str(fake.url), redis) as url:
            async with SendKit(api_key=DEFAULT_WORKSPACE_KEY, base_url=url, rate_budget=budget) as client:
                report: ImportReport = await client.dnc.import_bulk(
                    [f"u{i}@example.com" for i in range(ENTRIES)], batch_size=BATCH
                )
        stored = len(fake.dnc_emails())
    refused = sum(answer == status for answer in budget.statuses)
    assert stored == ENTRIES, name
    assert report.imported == ENTRIES
    assert report.failed == ()
    assert report.rate_limited == refused  # each of the limiter's refusals seen as one
    assert set(budget.statuses) <= {200, status}
    # Paced, not hammered: a semaphore loop is refused in half of its requests here.
    assert refused <= 0.2 * len(budget.statuses), (name, refused, len(budget.statuses))

"""One answer's rate-limit fields cannot disable the client: poisoned values are bounded, pauses re-probed.

Every answer carries the poison (so it is learned again and again), in
virtual time: the budget's waits are real to it and cost the test nothing.
Ten single calls and a 20,000-entry job must finish, none waiting out its
``max_queue_wait``, in a bounded virtual time.
"""

from __future__ import annotations

import pytest

from sendkit_async import SendKit
from sendkit_async.testing import FakeClock, MockTransport, json_response, virtual_clock

from .conftest import KEY

PAGE = {"success": True, "data": [], "pagination": {"total": 0, "page": 1, "limit": 1, "pages": 0}}
IMPORTED = {"success": True, "data": {"imported": 1000, "skipped": 0}}

POISONS = {
    "reset 10**30": {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(10**30)},
    "reset of 40 nines": {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9" * 40},
    "IETF reset 99999999999": {"RateLimit-Remaining": "0", "RateLimit-Reset": "99999999999"},
    "Limit 0": {"X-RateLimit-Limit": "0", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"},
    "negative values": {"X-RateLimit-Limit": "-5", "X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "-30"},
    "remaining 0, reset 0": {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "0",
    },
    "a window of 11 days": {
        "RateLimit-Policy": "1;w=999999",
        "RateLimit-Limit": "1",
        "RateLimit-Remaining": "0",
    },
    "limit 10**30": {
        "X-RateLimit-Limit": str(10**30),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "0.5",
    },
    "an HTTP-date Retry-After in 9999": {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
}


def _server(poison: dict[str, str]) -> MockTransport:
    def handler(request):
        body = IMPORTED if request.url.path == "/v1/dnc/import" else PAGE
        return json_response(200, body, poison)

    return MockTransport(handler)


@pytest.mark.virtual_time
@pytest.mark.parametrize("name", POISONS)
async def test_single_calls_and_a_bulk_job_survive_a_poisoned_answer(name) -> None:
    clock = virtual_clock()

    async def main() -> float:
        async with SendKit(api_key=KEY, clock=clock, transport=_server(POISONS[name])) as client:
            for _ in range(10):
                await client.dnc.get_page(limit=1)
            report = await client.dnc.import_bulk(
                [f"u{i}@example.com" for i in range(20_000)], batch_size=1_000, max_queue_wait=120
            )
            assert report.imported == 20_000
            assert report.failed == ()
        return clock.monotonic()

    elapsed = await main()
    # 30 requests: never a whole max_queue_wait (60 s) for any, never an hour's pause.
    assert elapsed < 30 * 60


@pytest.mark.virtual_time
@pytest.mark.parametrize(
    "name", ["reset 10**30", "IETF reset 99999999999", "an HTTP-date Retry-After in 9999"]
)
async def test_a_refusal_with_a_poisoned_wait_is_re_probed_not_obeyed(name) -> None:
    clock = virtual_clock()
    answers = iter([429, 429, 200])

    def handler(_request):
        status = next(answers, 200)
        return json_response(status, PAGE if status == 200 else {"error": "Too Many Requests"}, POISONS[name])

    async def main() -> float:
        async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler)) as client:
            await client.dnc.get_page()
        return clock.monotonic()

    assert await main() < 10  # short probing pauses, not the hours the answers named


@pytest.mark.virtual_time
@pytest.mark.parametrize("refused_for", [30.0, 120.0])
async def test_a_server_that_refuses_everything_ends_a_job_in_about_max_refused_for(refused_for) -> None:
    clock = virtual_clock()
    transport = MockTransport(lambda _request: json_response(429, {"error": "Too Many Requests"}))

    async def main():
        async with SendKit(api_key=KEY, clock=clock, transport=transport) as client:
            return await client.dnc.import_bulk(
                [f"u{i}@example.com" for i in range(10_000)],
                max_refused_for=refused_for,
                max_rate_limit_retries=10_000,  # the time bound, not the count, ends it
            )

    report = await main()
    assert len(report.failed) == 10_000
    assert {failure.kind.value for failure in report.failed} == {"gave_up"}
    # Refused for max_refused_for, give or take the budget's last pause (it grows as 429s go on).
    assert refused_for <= clock.monotonic() <= refused_for * 1.25 + 5


@pytest.mark.virtual_time
async def test_with_the_defaults_bare_429s_forever_end_a_job_within_max_refused_for() -> None:
    clock = virtual_clock()
    transport = MockTransport(lambda _request: json_response(429, {"error": "Too Many Requests"}))

    async def main():
        async with SendKit(api_key=KEY, clock=clock, transport=transport) as client:
            return await client.dnc.import_bulk([f"u{i}@example.com" for i in range(10_000)])

    report = await main()
    assert len(report.failed) == 10_000
    # Whichever bound comes first (30 refusals in a row, or 120 s of them), never past the second.
    assert clock.monotonic() <= 120 * 1.25 + 5


@pytest.mark.parametrize("status", [403, 404])
async def test_an_import_completes_when_the_list_endpoint_is_refused(status) -> None:
    """The rate probe (GET /v1/dnc?limit=1) is a hint: a key or proxy allowing only imports still imports."""
    seen: list[str] = []

    def handler(request):
        seen.append(request.url.path)
        if request.url.path == "/v1/dnc":
            return json_response(status, {"error": "Forbidden" if status == 403 else "Not Found"})
        return json_response(200, IMPORTED)

    async with SendKit(api_key=KEY, clock=FakeClock(), transport=MockTransport(handler)) as client:
        report = await client.dnc.import_bulk([f"u{i}@example.com" for i in range(5_000)], batch_size=1_000)
    assert report.failed == ()
    assert report.imported == 5_000
    assert seen.count("/v1/dnc") == 1  # asked once, refused, and the job went on

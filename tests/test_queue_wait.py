"""A call's wait for its rate-budget slot is bounded (``max_queue_wait``), in virtual time."""

from __future__ import annotations

import pytest

from sendkit_async import BudgetTimeoutError, ConfigurationError, SendKit
from sendkit_async.bulk import FailureKind
from sendkit_async.testing import MockTransport, json_response, virtual_clock

from .conftest import KEY

PAGE = {"data": [], "pagination": {"page": 1, "limit": 50, "total": 0, "totalPages": 0}}
IMPORTED = {"success": True, "data": {"imported": 1, "skipped": 0}}


def paused_once(seconds: str, answer: dict) -> MockTransport:
    """A server whose first answer is a 429 asking for ``seconds``, and every other one ``answer``."""
    calls = []

    def handler(_request):
        calls.append(1)
        if len(calls) == 1:
            return json_response(429, {"error": "Too Many Requests"}, {"Retry-After": seconds})
        return json_response(200, answer)

    return MockTransport(handler)


@pytest.mark.virtual_time
async def test_a_call_held_past_max_queue_wait_raises_naming_how_long_it_waited():
    clock = virtual_clock()
    transport = paused_once("30", PAGE)

    async def main():
        async with SendKit(api_key=KEY, clock=clock, transport=transport, max_queue_wait=5) as client:
            started = clock.monotonic()
            with pytest.raises(BudgetTimeoutError) as caught:
                await client.dnc.get_page()
            return clock.monotonic() - started, caught.value

    elapsed, error = await main()
    assert elapsed == pytest.approx(5.0)
    assert (error.method, error.path, error.limit) == ("GET", "/v1/dnc", 5.0)
    assert error.waited == pytest.approx(5.0)
    assert "waited 5.00s" in str(error)
    assert "max_queue_wait=5s" in str(error)
    assert len(transport.requests) == 1  # the retry it waited for was never sent


@pytest.mark.virtual_time
async def test_without_a_limit_the_call_waits_out_the_pause():
    clock = virtual_clock()
    transport = paused_once("30", PAGE)

    async def main():
        async with SendKit(api_key=KEY, clock=clock, transport=transport, max_queue_wait=None) as client:
            await client.dnc.get_page()
        return clock.monotonic()

    assert await main() >= 30
    assert len(transport.requests) == 2


@pytest.mark.virtual_time
async def test_a_copy_takes_its_own_limit_and_a_wait_within_it_goes_through():
    clock = virtual_clock()
    transport = paused_once("2", PAGE)

    async def main():
        async with SendKit(api_key=KEY, clock=clock, transport=transport, max_queue_wait=1) as client:
            await client.with_options(max_queue_wait=3).dnc.get_page()
        return clock.monotonic()

    assert 2 <= await main() < 3
    assert len(transport.requests) == 2


async def test_an_auto_advancing_clock_sets_no_timer_so_its_time_does_not_jump(clock):
    transport = paused_once("2", PAGE)
    async with SendKit(api_key=KEY, clock=clock, transport=transport, max_queue_wait=60) as client:
        for _ in range(3):
            await client.dnc.get_page()
    assert 2 <= clock.monotonic() < 10  # the server's pause and the pace, not the 60 s limit


@pytest.mark.virtual_time
async def test_a_bulk_batch_waits_as_long_as_it_takes_unless_the_job_sets_a_limit():
    for limit, landed in ((None, True), (1.0, False)):
        clock = virtual_clock()
        transport = paused_once("30", IMPORTED)

        async def main(limit=limit, transport=transport, clock=clock):
            async with SendKit(api_key=KEY, clock=clock, transport=transport, max_queue_wait=0.5) as client:
                return await client.dnc.import_bulk(["a@example.com"], concurrency=1, max_queue_wait=limit)

        report = await main()
        assert report.balanced
        if landed:
            assert report.imported == 1
        else:
            [failure] = report.failed
            assert failure.kind is FailureKind.GAVE_UP
            assert "max_queue_wait=1s" in failure.reason


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5", True])
def test_a_bad_limit_is_a_configuration_error(bad):
    with pytest.raises(ConfigurationError, match="max_queue_wait"):
        SendKit(api_key=KEY, transport=MockTransport(lambda _r: json_response(200, PAGE)), max_queue_wait=bad)


async def test_a_result_that_arrives_as_its_caller_is_cancelled_is_given_back():
    import anyio  # noqa: PLC0415

    from sendkit_async._clock import SystemClock, at_most  # noqa: PLC0415

    given_back = []

    async def undo(result):
        given_back.append(result)

    with anyio.CancelScope() as caller:

        async def wait():
            caller.cancel()  # the cancellation lands just as the permit is granted
            return "permit"

        await at_most(SystemClock(), 10.0, wait, undo)
    assert caller.cancelled_caught
    assert given_back == ["permit"]


async def test_interactive_calls_cancelled_at_random_points_never_leave_a_permit_behind():
    import asyncio  # noqa: PLC0415
    import random  # noqa: PLC0415

    from sendkit_async.testing import FakeSendKit  # noqa: PLC0415

    rng = random.Random(3)
    async with FakeSendKit(latency=0.002, rate_limit=2000) as fake, fake.client() as client:
        for _ in range(60):
            calls = [asyncio.ensure_future(client.dnc.get_page(limit=1)) for _ in range(5)]
            await asyncio.sleep(rng.uniform(0, 0.006))
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
        assert client.budget_snapshot().in_flight == 0
        await asyncio.wait_for(client.dnc.get_page(limit=1), timeout=5)  # the budget still lets calls out

"""concurrency="auto": in flight follows rate x latency, and backs off a server that queues (virtual time)."""

from __future__ import annotations

import math
import statistics
from asyncio import CancelledError

import aiohttp
import anyio
import anyio.lowlevel
import pytest

from sendkit_async import SendKit, ValidationError
from sendkit_async._clock import Clock
from sendkit_async._flow import HEADROOM, TOLERANCE, AdaptiveLimit, FixedLimit, check_concurrency
from sendkit_async._hooks import Attempt
from sendkit_async.testing import DEFAULT_WORKSPACE_KEY, FakeClock, FakeSendKit, virtual_clock

from .conftest import KEY
from .flowsim import VirtualServer

RATE = 20


def _entries(batches: int, size: int = 10) -> list[str]:
    return [f"u{n}@example.com" for n in range(batches * size)]


async def _import(server: VirtualServer, clock: Clock, batches: int, **options):
    progress = []
    async with SendKit(api_key=KEY, clock=clock, transport=server.transport()) as client:

        async def main():
            return await client.dnc.import_bulk(
                _entries(batches), batch_size=10, on_progress=progress.append, **options
            )

        report = await main()
        snapshot = client.budget_snapshot()
    return report, progress, snapshot


@pytest.mark.virtual_time
@pytest.mark.parametrize("latency", [0.1, 1.0, 3.0])
async def test_auto_concurrency_converges_to_rate_times_latency(latency) -> None:
    clock = virtual_clock()
    server = VirtualServer(clock, service=latency, rate=RATE, list_service=0.05)
    report, progress, snapshot = await _import(server, clock, batches=300)
    assert report.balanced
    assert report.imported == 3_000
    start = server.arrivals[0][0]
    # Within a few seconds of simulated time: one round trip to learn the
    # latency, then in flight is what Little's law asks for.
    settled = [n for t, n in server.arrivals if start + latency + 2 <= t <= server.arrivals[-1][0] - latency]
    needed = RATE * latency
    assert 0.8 * needed <= statistics.median(settled) <= 1.25 * needed + 1
    ideal = 300 / RATE + latency
    assert clock.monotonic() <= 1.15 * ideal
    assert server.rate_limited <= 3
    assert progress[-1].concurrency >= needed
    assert snapshot.in_flight_limit is not None
    assert snapshot.in_flight_limit >= needed


@pytest.mark.virtual_time
async def test_auto_concurrency_backs_off_a_saturating_server_and_interactive_calls_stay_quick() -> None:
    clock = virtual_clock()
    capacity, service = 4, 0.5
    server = VirtualServer(clock, service=service, capacity=capacity, rate=RATE)
    waits: list[float] = []
    async with SendKit(api_key=KEY, clock=clock, transport=server.transport()) as client:

        async def interactive(stop: anyio.Event) -> None:
            while not stop.is_set():
                await clock.sleep(1.0)
                asked = clock.monotonic()
                await client.dnc.get_page(limit=1)
                waits.append(clock.monotonic() - asked)

        async def main():
            stop = anyio.Event()
            async with anyio.create_task_group() as group:
                group.start_soon(interactive, stop)
                report = await client.dnc.import_bulk(_entries(120), batch_size=10)
                stop.set()
            return report

        report = await main()
    assert report.balanced
    assert report.imported == 1_200
    start = server.arrivals[0][0]
    steady = server.in_flight_after(start + 4)
    assert steady
    assert statistics.quantiles(steady, n=10)[-1] <= 2 * capacity
    # Throughput over the steady part: at least 90% of what the server can do.
    done = [t for t in server.completions if t >= start + 4]
    throughput = (len(done) - 1) / (done[-1] - done[0])
    assert throughput >= 0.9 * capacity / service
    assert statistics.median(waits[2:]) <= 2 * service


@pytest.mark.virtual_time
async def test_a_number_keeps_its_meaning_a_fixed_cap() -> None:
    clock = virtual_clock()
    server = VirtualServer(clock, service=1.0, rate=RATE)
    report, progress, _ = await _import(server, clock, batches=40, concurrency=4)
    assert report.imported == 400
    assert server.peak <= 4
    assert {p.concurrency for p in progress} == {4}


def _sent(limit: AdaptiveLimit, size: int = 600_000):
    """An attempt leaving, watched by the limit as the session's hook watches it."""
    attempt = Attempt("POST", "/v1/dnc/import", 1, size)
    watch = limit.attempt(attempt)
    watch.__enter__()
    return attempt, watch


def _ended(sent, status=200) -> None:
    attempt, watch = sent
    attempt.status, attempt.answered = status, status is not None
    watch.__exit__(None, None, None)


def _answer(limit: AdaptiveLimit, clock: FakeClock, latency: float, *, size: int = 600_000, status=200):
    sent = _sent(limit, size)
    clock.advance(latency)
    _ended(sent, status)


def test_a_cancelled_attempt_teaches_nothing() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(clock=clock, rate=lambda: None, max_limit=64)
    for _ in range(3):
        _answer(limit, clock, 0.5)
    _, watch = _sent(limit)
    clock.advance(30.0)  # far past the unloaded latency: it would cut, were it an answer
    watch.__exit__(CancelledError, CancelledError(), None)
    assert limit.limit == 64
    assert limit._out == {}


def test_failures_cut_the_limit_once_per_round_trip_and_quiet_answers_win_it_back() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(clock=clock, rate=lambda: (100.0, 1), max_limit=64)
    out = [_sent(limit) for _ in range(40)]  # 40 out at once
    clock.advance(0.5)
    _ended(out.pop(), 503)
    assert limit.limit == 30  # 3/4 of the 40 the failure met
    _ended(out.pop(), 503)
    assert limit.limit == 30  # sent before the cut: the same failure, not a second
    for sent in out:
        _ended(sent)
    for _ in range(500):
        _answer(limit, clock, 0.5)
    assert limit.limit > 30


def test_latency_that_grows_with_in_flight_cuts_to_what_the_server_serves_at_once() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(clock=clock, rate=lambda: None, max_limit=64)
    _answer(limit, clock, 0.01, size=1_000)  # a tiny request: its own size class
    _answer(limit, clock, 0.002, status=429)  # refused at the edge: says nothing of service time
    for _ in range(3):
        _answer(limit, clock, 0.5)
    assert limit.limit == 64  # no rate, latency steady: nothing bounds it but the maximum
    # 20 out at once, answering after 4x the unloaded latency: the server serves 5 at a time.
    out = [_sent(limit) for _ in range(20)]
    clock.advance(2.0)
    for sent in out:
        _ended(sent)
    assert limit.limit == int(20 * TOLERANCE / 4)


def test_the_limit_follows_the_rate_the_budget_allows_and_grows_while_the_first_answer_is_out() -> None:
    clock = FakeClock()
    rate = {"now": 10.0}
    limit = AdaptiveLimit(
        clock=clock, rate=lambda: None if rate["now"] is None else (rate["now"], 1), max_limit=64
    )
    assert limit.limit == 2  # nothing out: one sends, one waits in the budget
    held = _sent(limit)
    clock.advance(2.0)
    assert limit.limit == math.ceil(10 * 2.0 * HEADROOM) + 2  # the first answer is 2 s late at least
    rate["now"] = None
    assert limit.limit == 2
    _ended(held)


async def test_slots_wait_in_order_and_a_larger_limit_lets_waiters_in() -> None:
    limit = FixedLimit(2)
    order: list[int] = []

    async def one(number: int, hold: anyio.Event) -> None:
        async with limit.slot():
            order.append(number)
            await hold.wait()

    hold = anyio.Event()
    async with anyio.create_task_group() as group:
        for number in range(5):
            group.start_soon(one, number, hold)
            await anyio.lowlevel.checkpoint()
        await anyio.sleep(0.01)
        assert order == [0, 1]
        assert limit.in_flight == 2
        hold.set()
    assert order == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "fast", None, True])
def test_concurrency_is_auto_or_a_whole_number(bad) -> None:
    with pytest.raises(ValidationError, match="concurrency"):
        check_concurrency(bad)


async def test_the_bundled_fake_queues_past_its_capacity_and_sheds_past_its_queue_limit() -> None:
    headers = {"X-Api-Key": DEFAULT_WORKSPACE_KEY, "Authorization": f"Bearer {DEFAULT_WORKSPACE_KEY}"}
    async with FakeSendKit(capacity=2, queue_limit=1, latency=0.2) as fake, aiohttp.ClientSession() as http:
        statuses: list[int] = []
        retry_after: list[str | None] = []

        async def one() -> None:
            async with http.get(f"{fake.url}/v1/dnc", headers=headers) as response:
                statuses.append(response.status)
                retry_after.append(response.headers.get("Retry-After"))

        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(one)
    assert sorted(statuses) == [200, 200, 200, 503]  # two served, one queued, one shed
    assert fake.stats.max_queued == 1
    assert fake.stats.overloaded == 1
    assert "1" in retry_after

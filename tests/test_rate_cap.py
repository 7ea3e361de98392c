"""``max_rate`` (``RateCap``) in virtual time: its spacing, its bursts, and its tokens under cancellation."""

from __future__ import annotations

import itertools

import anyio
import pytest

from sendkit_async import SendKit
from sendkit_async.budget import BudgetSnapshot, Lane, LocalBudget, Observation, Permit, RateCap
from sendkit_async.testing import FakeClock, MockTransport, json_response, virtual_clock

from .conftest import KEY


def _cap(clock: FakeClock, rate: float, capacity: int = 1) -> RateCap:
    return RateCap(LocalBudget(clock=clock), rate, clock=clock, capacity=capacity)


@pytest.mark.virtual_time
async def test_permits_are_spaced_one_interval_apart():
    clock = virtual_clock()
    cap = _cap(clock, rate=4)
    times: list[float] = []

    async def take() -> None:
        permit = await cap.acquire()
        times.append(clock.monotonic())
        await cap.observe(permit, _answer(clock))

    async def run() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(9):
                group.start_soon(take)

    await run()
    assert sorted(times) == pytest.approx([n * 0.25 for n in range(9)])


class _Unpaced:
    """A budget that never waits: the cap's own pacing, alone (a blind budget opens at a guessed rate)."""

    def bind(self, key_id: str) -> None:
        del key_id

    async def acquire(self, lane: Lane = Lane.INTERACTIVE) -> Permit:
        return Permit(lane=lane, token=0, granted_at=0.0)

    async def observe(self, permit: Permit, observation: Observation) -> None:
        del permit, observation

    def snapshot(self) -> BudgetSnapshot:
        return LocalBudget().snapshot()


@pytest.mark.virtual_time
async def test_a_burst_of_capacity_goes_at_once_then_the_rate_holds():
    clock = virtual_clock()
    cap = RateCap(_Unpaced(), 2, clock=clock, capacity=3)
    times: list[float] = []

    async def run() -> None:
        for _ in range(5):
            await _spend(cap, clock)
            times.append(clock.monotonic())

    await run()
    assert times == pytest.approx([0, 0, 0, 0.5, 1.0])


@pytest.mark.virtual_time
async def test_a_caller_cancelled_while_it_waits_costs_the_others_nothing():
    clock = virtual_clock()
    cap = _cap(clock, rate=1)
    times: list[float] = []

    async def run() -> None:
        await _spend(cap, clock)  # t=0: the next token is due at t=1
        with anyio.move_on_after(0):  # gives up while waiting for that token
            await _spend(cap, clock)
        await _spend(cap, clock)
        times.append(clock.monotonic())

    await run()
    assert times == pytest.approx([1.0])  # not 2.0: the abandoned wait kept no token


@pytest.mark.virtual_time
async def test_a_caller_cancelled_in_the_inner_budget_gives_its_token_back():
    clock = virtual_clock()

    class Stuck(LocalBudget):
        stuck = True

        async def acquire(self, lane=None):  # noqa: ARG002
            if self.stuck:
                self.stuck = False
                await clock.sleep(3600)  # cancelled long before
            return await super().acquire()

    cap = RateCap(Stuck(clock=clock), 1, clock=clock)
    times: list[float] = []

    async def run() -> None:
        with anyio.move_on_after(0):
            await cap.acquire()  # takes the t=0 token, then is cancelled inside the budget
        await cap.acquire()
        times.append(clock.monotonic())

    await run()
    assert times == pytest.approx([0.0])


@pytest.mark.virtual_time
async def test_an_import_with_max_rate_sends_its_batches_no_faster_than_that():
    clock = virtual_clock()
    sent: list[float] = []

    def handler(request):
        sent.append(clock.monotonic())
        if request.method == "GET":
            return json_response(
                200, {"data": [], "pagination": {"page": 1, "limit": 1, "total": 0, "totalPages": 0}}
            )
        return json_response(200, {"success": True, "data": {"imported": 10, "skipped": 0}})

    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler)) as client:
        entries = [f"u{n}@example.com" for n in range(100)]
        report = await client.dnc.import_bulk(entries, batch_size=10, max_rate=2, concurrency=4)
    assert report.imported == 100
    posts = sent[-10:]
    gaps = [b - a for a, b in itertools.pairwise(posts)]
    assert min(gaps) >= 0.5 - 1e-9  # 2 per second, however many workers
    assert posts[-1] - posts[0] == pytest.approx(4.5)


async def _spend(cap: RateCap, clock: FakeClock) -> None:
    permit = await cap.acquire()
    await cap.observe(permit, _answer(clock))


def _answer(clock: FakeClock):
    from sendkit_async.budget import Observation  # noqa: PLC0415

    return Observation.of(200, sent_at=clock.wall(), received_at=clock.wall())

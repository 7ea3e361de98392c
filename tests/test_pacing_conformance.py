"""Every limiter shape and header spelling of the matrix, through both budgets, in virtual time.

Each cell: 100 requests of eight workers at 10 requests/s with 150 ms answers
(``ideal`` = requests / rate + one answer). ``LocalBudget`` and ``RedisBudget``
(a real redis-server, given the loop's virtual time) run the same cells and must
both reach the targets: within 1.10x ideal, at most 2% of requests refused.
Every test runs on a VirtualTimeLoop: time jumps whenever no task can run.
"""

import pytest
import redis.asyncio as aioredis

from sendkit_async._clock import Clock
from sendkit_async.testing import virtual_clock
from sendkit_async.testing._limits import Spelling, make_limiter
from sendkit_async.testing._matrix import BLIND, CELLS, Cell

from .sim import crowd, redis_budget, simulate

pytestmark = pytest.mark.virtual_time

RATE, LATENCY, REQUESTS = 10, 0.15, 100


def ideal(requests: int, rate: float, latency: float) -> float:
    return requests / rate + latency


@pytest.fixture(params=["local", "redis"])
async def budget_for(request):
    """A factory of fresh budgets on a clock: in-process, or through a real redis-server."""
    if request.param == "local":
        yield lambda _clock: None  # simulate() makes a LocalBudget on the clock
        return
    server = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    names = iter(range(1000))
    try:
        yield lambda clock: redis_budget(client, clock, prefix=f"conformance{next(names)}")
    finally:
        await client.aclose()


def limiter_for(cell: Cell, clock: Clock, rate: float = RATE):
    start = clock.wall() + cell.spelling.clock_offset
    return make_limiter(cell.shape, rate, 1.0, burst=cell.burst, tenant_share=cell.tenant_share, start=start)


async def run_cell(cell: Cell, budget_for):
    """The matrix's run of one cell: 100 requests, 8 workers, 10 requests/s, 150 ms answers."""
    clock = virtual_clock()
    return await simulate(
        limiter_for(cell, clock),
        requests=REQUESTS,
        latency=LATENCY,
        spelling=cell.spelling,
        clock=clock,
        budget=budget_for(clock),
    )


@pytest.mark.parametrize("cell", CELLS, ids=[cell.name for cell in CELLS])
async def test_every_cell_paces_within_ten_percent_of_ideal_with_at_most_two_percent_429s(cell, budget_for):
    run = await run_cell(cell, budget_for)
    assert run.done == REQUESTS
    assert run.elapsed <= 1.10 * ideal(REQUESTS, RATE * (1 - cell.tenant_share), LATENCY)
    assert run.rate_limited <= 0.02 * REQUESTS


async def test_without_rate_fields_the_pace_is_learned_from_a_few_429s(budget_for):
    # No fields at all: nothing to learn from but refusals. See the README for why this cell misses.
    run = await run_cell(BLIND, budget_for)
    assert run.elapsed <= 1.25 * ideal(REQUESTS, RATE, LATENCY)
    assert run.rate_limited <= 0.05 * REQUESTS


@pytest.mark.parametrize("spelling", [Spelling(reset="epoch"), Spelling(reset="seconds"), Spelling()])
async def test_a_short_job_reaches_the_limit_without_a_whole_second_pause(spelling, budget_for):
    # 30 requests at 10 requests/s, 400 ms each.
    clock = virtual_clock()
    cell = Cell("short", "fixed", spelling)
    run = await simulate(
        limiter_for(cell, clock),
        requests=30,
        latency=0.4,
        spelling=spelling,
        clock=clock,
        budget=budget_for(clock),
    )
    assert run.elapsed <= 1.10 * ideal(30, RATE, 0.4)
    assert run.rate_limited == 0


@pytest.mark.parametrize("shape", ["fixed", "token"])
async def test_five_hundred_concurrent_single_calls_reach_the_limit(shape, budget_for):
    clock = virtual_clock()
    cell = Cell("crowd", shape, Spelling(reset="epoch"))
    run = await crowd(
        limiter_for(cell, clock, rate=20),
        calls=500,
        latency=0.15,
        spelling=cell.spelling,
        clock=clock,
        budget=budget_for(clock),
    )
    assert run.done == 500
    assert run.elapsed <= 1.10 * ideal(500, 20, 0.15)
    assert run.rate_limited <= 0.02 * 500

"""One admission rule, stated twice: ``_admit.py`` and ``budget.lua`` decide the same on the same traces.

The Lua runs on a real redis-server, given the trace's time instead of Redis'
own, so every grant, wait and sequence number can be compared exactly.
"""

import math
import random

import attrs
import pytest
import redis.asyncio as aioredis

from sendkit_async._budget import Lane
from sendkit_async._budget._admit import Admission, decide, grants, take
from sendkit_async._budget._pacer import Plan
from sendkit_async._budget._protocol import NEVER
from sendkit_async._budget._shared import SharedState
from sendkit_async.testing import FakeClock

TTL = 30.0  # permits never expire within a trace


def random_plan(rng: random.Random, now: float, seq: int) -> Plan:
    return Plan(
        interval=rng.choice([0.0, 0.05, 0.1, 0.25]),
        cap=rng.choice([0, 0, 1, 2, 3]),
        pause_until=rng.choice([NEVER, now + rng.uniform(-0.2, 0.3)]),
        credit=rng.choice([-1, 0, 1, 3]),
        credit_seq=max(seq - rng.randint(0, 3), 0),
        credit_from=now - rng.uniform(0, 0.5),
        drain=rng.choice([0.0, 0.0, 2.5]),
        hold_until=rng.choice([now + rng.uniform(0, 0.5), -NEVER]),
        catchup=rng.choice([0.0, 0.015]),
        quota=rng.choice([0, 0, 3, 10]),
        period=rng.choice([0.0, 1.0]),
    )


async def lua(shared: SharedState, operation: str, now: float, *args):
    shared.script_time = lambda: now
    return await shared.call(operation, *args)


@pytest.mark.parametrize("seed", range(6))
async def test_the_lua_admission_takes_the_python_admissions_decisions(redis_server, seed):
    rng = random.Random(seed)
    client = aioredis.Redis.from_url(redis_server.url)
    shared = SharedState(
        client, FakeClock(), prefix="sendkit:budget", timeout=5, retry_every=1.0, in_flight_ttl=TTL, keep=3600
    )
    shared.bind(f"trace{seed}")
    state, plan, version = Admission(), Plan(), 0
    now, flying = 1_700_000_000.0, []
    try:
        for step in range(150):
            now += rng.choice([0.0, 0.01, 0.05, 0.1, 0.103])
            if rng.random() < 0.2:
                plan = random_plan(rng, now, state.seq)
                reply = await lua(
                    shared, "learn", now, version, b"{}", 3600, *map(repr, map(float, attrs.astuple(plan)))
                )
                assert int(reply[0]) == 1
                version += 1
            if flying and rng.random() < 0.3:
                token = flying.pop(rng.randrange(len(flying)))
                await lua(shared, "observe", now, token)
                state.in_flight -= 1
            lane = rng.choice([Lane.INTERACTIVE, Lane.BULK])
            token = f"t{step}"
            granted, wait, _, seq, in_flight, *_ = await lua(
                shared, "acquire", now, int(lane), token, "p", TTL, 3600
            )
            slot = decide(state, plan, now)
            expect_granted = grants(lane, slot, now)
            assert int(granted) == expect_granted, (step, plan, state, slot)
            if math.isinf(slot):
                assert float(wait) == -1
                continue
            assert float(wait) == pytest.approx(max(slot - now, 0.0), abs=1e-6)
            if expect_granted:
                assert int(seq) == take(state, plan, max(slot, now))
                assert int(in_flight) == state.in_flight
                flying.append(token)
    finally:
        await client.aclose()

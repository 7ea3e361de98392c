import math

import anyio
import pytest

from sendkit_async import Lane, LocalBudget, Observation, RateLimitError, SendKit, Shape
from sendkit_async._budget import Pacer
from sendkit_async.testing import FakeClock, FakeSendKit
from sendkit_async.testing._limits import make_limiter

from .conftest import API, KEY
from .sim import simulate

# -- the pacer's rules, with plain numbers ------------------------------------


def answer(pacer, now, *, sent, status=200, limit=10, remaining=None, reset=None, resolution=0.0, retry=None):
    pacer.observe(
        now,
        sent=sent,
        status=status,
        limit=limit,
        remaining=remaining,
        reset=reset,
        reset_resolution=resolution,
        window=None,
        retry=retry,
    )


def test_the_first_request_goes_alone_until_an_answer_arrives():
    pacer = Pacer(max_pause=60)
    assert pacer.slot(0.0) == 0.0
    pacer.take(0.0)
    assert math.isinf(pacer.slot(0.0))
    answer(pacer, 0.1, sent=0.0, remaining=9, reset=1.0)
    assert pacer.slot(0.1) < math.inf


def test_a_spent_statement_makes_the_next_send_wait_for_its_reset():
    pacer = Pacer(max_pause=60)
    pacer.take(0.0)
    answer(pacer, 0.1, sent=0.0, remaining=1, reset=0.5)
    pacer.take(0.1)
    pacer.take(0.2)  # one past what the server granted
    assert pacer.slot(0.2) >= 0.5


def test_the_interval_is_the_granted_time_per_request():
    pacer = Pacer(max_pause=60)
    pacer.take(0.0)
    answer(pacer, 0.1, sent=0.0, remaining=9, reset=1.0)  # 10 requests over 1 s
    assert pacer.interval == pytest.approx(0.1, rel=0.03)


def test_a_whole_second_reset_is_not_enforced_and_a_policy_names_the_interval():
    pacer = Pacer(max_pause=60)
    pacer.take(0.0)
    pacer.observe(
        0.1,
        sent=0.0,
        status=200,
        limit=20,
        remaining=0,
        reset=1.0,
        reset_resolution=1.0,
        window=2.0,
        retry=None,
    )
    assert pacer.interval == pytest.approx(0.1, rel=0.03)  # 20 per 2 s
    assert pacer.slot(0.1) < 0.5  # the rounded reset does not hold it


def test_a_429_pauses_every_caller_until_retry_after():
    pacer = Pacer(max_pause=60)
    pacer.take(0.0)
    answer(pacer, 0.1, sent=0.0, status=429, remaining=None, retry=2.1)
    assert pacer.pause_until == pytest.approx(2.1)
    assert pacer.slot(0.2) == pytest.approx(2.1)


def test_a_precise_reset_beats_a_retry_after_rounded_up_to_whole_seconds():
    pacer = Pacer(max_pause=60)
    pacer.take(0.0)
    answer(pacer, 0.1, sent=0.0, remaining=0, reset=0.1)
    pacer.take(0.1)
    # A token bucket: the next request is allowed at 0.2; Retry-After says ceil(0.1) = 1 s.
    answer(pacer, 0.2, sent=0.1, status=429, remaining=0, reset=0.2, retry=1.2)
    assert pacer.pause_until < 0.25


@pytest.mark.parametrize("wait", [61.0, 100_000.0])
def test_a_pause_longer_than_max_pause_leaves_only_a_short_probing_pause(wait):
    pacer = Pacer(max_pause=60)
    pacer.take(0.0)
    answer(pacer, 0.1, sent=0.0, status=429, remaining=None, retry=0.1 + wait)
    assert 0.1 < pacer.pause_until <= 1.1


def test_a_pause_never_outlives_what_the_server_said():
    pacer = Pacer(max_pause=60)
    pacer.take(0.0)
    answer(pacer, 0.1, sent=0.0, status=429, remaining=None, retry=0.35)
    assert pacer.pause_until <= 0.35


def test_without_rate_fields_two_requests_fly_until_the_first_429():
    pacer = Pacer(max_pause=60)
    pacer.take(0.0)
    answer(pacer, 0.1, sent=0.0)
    assert pacer.shape is Shape.BLIND
    pacer.take(0.1)
    pacer.take(0.1)
    assert math.isinf(pacer.slot(0.1))


def test_a_transport_failure_frees_its_place_and_teaches_nothing():
    pacer = Pacer(max_pause=60)
    pacer.take(0.0)
    pacer.release()
    assert pacer.in_flight == 0
    assert pacer.shape is Shape.UNKNOWN


# -- convergence: eight workers against each limiter shape, in virtual time ----

SHAPES = [
    pytest.param("fixed", "x", 0.0, 1, id="fixed-window"),
    pytest.param("sliding", "x", 0.0, 1, id="sliding-window"),
    pytest.param("token", "x", 0.0, 1, id="token-bucket-burst-1"),
    pytest.param("token", "x", 0.0, 5, id="token-bucket-burst-5"),
    pytest.param("fixed", "ietf", 0.0, 1, id="ietf-fields"),
    pytest.param("fixed", "x", 0.5, 1, id="shared-key"),
]


@pytest.mark.parametrize(("shape", "style", "share", "burst"), SHAPES)
@pytest.mark.parametrize(("limit", "latency"), [(10, 0.1), (20, 0.05), (100, 0.05)])
async def test_the_budget_converges_to_the_servers_rate_with_few_429s(
    shape, style, share, burst, limit, latency
):
    limiter = make_limiter(shape, limit, 1.0, burst=burst, tenant_share=share, start=0.0)
    rate = limit * (1 - share)
    requests = int(rate * 10)
    run = await simulate(limiter, requests=requests, style=style, latency=latency)
    assert run.elapsed <= 1.15 * requests / rate
    assert run.rate_limited <= 0.03 * requests


@pytest.mark.parametrize("shape", ["fixed", "sliding"])
async def test_without_rate_fields_the_rate_is_learned_from_a_handful_of_429s(shape):
    limiter = make_limiter(shape, 10, 1.0, start=0.0)
    run = await simulate(limiter, requests=200, style="none")
    assert run.rate_limited <= 6  # not one a window: 20 windows here
    assert run.elapsed <= 1.35 * 20


async def test_interactive_calls_wait_about_one_interval_during_a_saturating_import():
    limiter = make_limiter("fixed", 10, 1.0, start=0.0)
    run = await simulate(limiter, requests=200, workers=16, interactive_every=0.73)
    waits = run.finished["interactive"]
    assert len(waits) > 10
    interval = 0.1
    assert max(waits) <= 2.5 * interval  # not behind sixteen queued batches
    assert sum(waits) / len(waits) <= 1.5 * interval


# -- the gate -----------------------------------------------------------------


async def test_a_cancelled_waiter_leaves_the_queue_and_the_gate_moves_on():
    clock = FakeClock(auto_advance=False)
    budget = LocalBudget(clock=clock)
    first = await budget.acquire(Lane.BULK)  # in flight, unanswered: the next must wait
    granted = []

    async def wait(lane):
        granted.append(await budget.acquire(lane))

    scope = anyio.CancelScope()

    async def wait_then_cancelled():
        with scope:
            await wait(Lane.BULK)

    async with anyio.create_task_group() as group:
        group.start_soon(wait_then_cancelled)
        await anyio.sleep(0.01)
        scope.cancel()
        group.start_soon(wait, Lane.INTERACTIVE)
        await anyio.sleep(0.01)
        assert budget.snapshot().waiting >= 1
        await budget.observe(first, Observation(200, sent_at=0.0, received_at=0.0))
    assert len(granted) == 1
    assert granted[0].lane is Lane.INTERACTIVE


# -- through the session ------------------------------------------------------


class RecordingBudget(LocalBudget):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lanes = []
        self.statuses = []

    async def acquire(self, lane=Lane.INTERACTIVE):
        self.lanes.append(lane)
        return await super().acquire(lane)

    async def observe(self, permit, observation):
        self.statuses.append(observation.status)
        await super().observe(permit, observation)


async def test_every_attempt_of_every_call_asks_the_budget_and_tells_it_the_answer(clock):
    budget = RecordingBudget(clock=clock)
    async with FakeSendKit(fail_rate=0.0) as fake, fake.client(rate_budget=budget, clock=clock) as client:
        conversation = fake.add_conversation("lead@example.com")
        await client.inbox.update(conversation, mark_read=True)
        fake.fail_rate = 1.0  # every attempt fails: the first try and both retries are paced
        with pytest.raises(Exception):  # noqa: B017, PT011 - any status error
            await client.with_options(max_retries=2).dnc.get_page()
        fake.fail_rate = 0.0
        await client.dnc.import_bulk([f"u{i}@example.com" for i in range(30)], batch_size=10)
    assert budget.statuses[:1] == [200]
    assert all(status >= 500 for status in budget.statuses[1:4])
    assert budget.lanes[:4] == [Lane.INTERACTIVE] * 4
    assert budget.lanes[4:] == [Lane.BULK] * 3
    assert len(budget.lanes) == len(budget.statuses) == 7


async def test_with_options_copies_share_the_clients_budget():
    async with SendKit(api_key=KEY) as client:
        copy = client.with_options(timeout=5, lane=Lane.BULK)
        assert copy.rate_budget is client.rate_budget


async def test_a_huge_retry_after_raises_at_once_and_the_next_call_goes_through(mocked, client, clock):
    mocked.get(f"{API}/v1/dnc", status=429, headers={"Retry-After": "100000"}, payload={"error": "x"})
    mocked.get(f"{API}/v1/dnc", payload={"success": True, "data": [], "pagination": {}})
    with pytest.raises(RateLimitError):
        await client.dnc.get_page()
    started = clock.monotonic()
    page = await client.dnc.get_page()
    assert page.items == ()
    assert clock.monotonic() - started <= 1.0  # a short probing pause, not 28 hours


async def test_five_hundred_concurrent_single_calls_through_one_client_all_succeed():
    # 20 requests per 50 ms window: 400 per second, so the test takes about 1.3 s.
    async with FakeSendKit(rate_limit=20, rate_window=0.05) as fake, fake.client() as client:
        ids = [fake.add_conversation(f"lead{i}@example.com") for i in range(500)]
        async with anyio.create_task_group() as group:
            for conversation in ids:
                group.start_soon(lambda c=conversation: client.inbox.update(c, ai_tag="seen"))
        assert all(fake.conversation(c).ai_tag == "seen" for c in ids)
        assert fake.stats.rate_limited <= 15  # at most 3% of the 500

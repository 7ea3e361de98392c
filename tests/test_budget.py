import itertools
import math

import anyio
import cattrs
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sendkit_async import RateLimitError, SendKit
from sendkit_async._budget import Learner
from sendkit_async._budget._admit import Admission, decide, take
from sendkit_async._budget._bracket import whole_seconds
from sendkit_async._budget._gate import Gate
from sendkit_async.budget import Lane, LocalBudget, Observation, Shape
from sendkit_async.testing import FakeClock, FakeSendKit, virtual_clock
from sendkit_async.testing._limits import Spelling, make_limiter

from .conftest import API, KEY
from .sim import Run, Server, exchange, simulate

# -- the learner's rules, with plain numbers -----------------------------------


def answer(
    learner, now, *, seq, sent, status=200, limit=10, remaining=None, reset=None, resolution=0.0, **kw
):
    learner.observe(
        now,
        seq=seq,
        sent=sent,
        status=status,
        limit=limit,
        remaining=remaining,
        reset=reset,
        reset_resolution=resolution,
        **kw,
    )


def slot(learner, state, now):
    return decide(state, learner.plan(), now)


def test_the_first_request_goes_alone_until_an_answer_arrives():
    learner, state = Learner(max_pause=60), Admission()
    assert slot(learner, state, 0.0) == 0.0
    take(state, learner.plan(), 0.0)
    assert math.isinf(slot(learner, state, 0.0))
    state.in_flight -= 1
    answer(learner, 0.1, seq=0, sent=0.0, remaining=9, reset=1.0)
    assert slot(learner, state, 0.1) < math.inf


@pytest.mark.parametrize("server", [False, True], ids=["fractional-reset", "epoch-reset"])
@given(order=st.permutations(range(1, 6)))
def test_answers_the_server_decided_in_another_order_never_let_more_through_than_it_has_left(server, order):
    # Six sends in a window of 8 (reset at 1.0). The first is answered; the other five overtake each
    # other on the way, so the server decides them in ``order`` and its count falls in that order,
    # while the answers come back in the sends' own order. Found in virtual time against the fake
    # (a 9th send in a window of 8): the newest *send's* statement is not the server's newest count.
    learner = Learner(max_pause=60)
    reset = 1.0
    answer(learner, 0.01, seq=0, sent=0.0, remaining=7, reset=reset, reset_server=server)
    left = {seq: 7 - 1 - rank for rank, seq in enumerate(order)}  # what the server says to each
    for seq in range(1, 6):
        answer(learner, 0.02, seq=seq, sent=0.0, remaining=left[seq], reset=reset, reset_server=server)
    # What admission lets through before the reset, wherever the statement is enforced (a precise
    # one, or a fixed window's quota at its start): its remaining, less the sends made after it.
    said = learner.statement
    assert said.remaining - (5 - said.seq) <= 8 - 6


@given(delays=st.lists(st.floats(0.0, 0.2), min_size=30, max_size=30))
def test_a_windows_quota_never_goes_before_the_window_turns_however_late_the_server_stamps(delays):
    # A fixed window of 10 a second, ending on whole seconds. The server stamps each answer's
    # fractional reset some time after the send (a queue, a busy core: up to 200 ms), and the
    # answer arrives 50 ms after that. Found by the import benchmark: the quota went at the reset
    # as counted from the send, up to 140 ms before the window turned, and 5-17% were refused.
    learner = Learner(max_pause=60)
    for n, delay in enumerate(delays):
        window, i = divmod(n, 10)
        sent = window + 0.05 * i
        stamped = sent + delay
        end = math.floor(stamped) + 1.0  # the window the server counted it in
        remaining = 9 - i if math.floor(stamped) == window else 9
        received = stamped + 0.05
        answer(learner, received, seq=n, sent=sent, remaining=remaining, reset=sent + (end - stamped))
        plan = learner.plan()
        if plan.quota:  # a window's quota to go at its start: never before the server's turn
            assert plan.hold_until >= end


def three_epoch_windows(learner):
    """Teach ``learner`` three fixed windows of 20 a second with epoch resets, every answer fast."""
    for n in range(60):
        sent = n * 0.05
        answer(
            learner,
            sent + 0.01,
            seq=n,
            sent=sent,
            limit=20,
            remaining=19 - n % 20,
            reset=float(int(sent) + 1),
            resolution=1.0,
            reset_server=True,
        )
    return learner


def test_a_server_that_starts_counting_resets_from_now_is_not_read_with_its_old_epoch_windows():
    # Found by the shared-budget benchmark: a key's learner kept in Redis from a fixed window with
    # epoch resets met a token bucket of burst 1 with resets in whole seconds from now (another
    # server on the key, or its limiter changed), kept sending each window's quota at its start,
    # and had 90% of its requests refused.
    learner = three_epoch_windows(Learner(max_pause=60))
    assert learner.plan().quota == 20  # a fixed window's quota at its start, as it should be
    for n in range(60, 70):  # now: a bucket, "1 second from now", one token at a time
        sent = 3.0 + (n - 60) * 0.05
        answer(
            learner, sent + 0.01, seq=n, sent=sent, limit=20, remaining=0, reset=sent + 1.0, resolution=1.0
        )
    plan = learner.plan()
    assert plan.quota == 0
    assert plan.interval >= 1 / 20


@pytest.mark.parametrize(("alone", "quota"), [(True, 20), (False, 0)], ids=["one-process", "shared"])
def test_a_windows_quota_goes_at_its_start_only_from_a_budget_no_other_process_shares(alone, quota):
    # Found by the shared-budget benchmark: four processes' bursts on one Redis budget landed on both
    # sides of the window's turn (8% refused); paced, none.
    learner = three_epoch_windows(Learner(max_pause=60, alone=alone))
    assert learner.plan().quota == quota
    assert learner.plan().interval == pytest.approx(0 if alone else 1 / 20, rel=0.05)


def test_a_spent_precise_statement_makes_the_next_send_wait_for_its_reset():
    learner, state = Learner(max_pause=60), Admission()
    take(state, learner.plan(), 0.0)
    answer(learner, 0.1, seq=0, sent=0.0, remaining=1, reset=0.5)
    take(state, learner.plan(), 0.1)  # the one the server still granted
    assert slot(learner, state, 0.2) >= 0.5


def test_the_interval_is_the_granted_time_per_request_with_a_small_margin():
    learner = Learner(max_pause=60)
    answer(learner, 0.1, seq=0, sent=0.0, remaining=9, reset=1.0)  # 10 requests over 1 s
    assert learner.plan().interval == pytest.approx(0.1, rel=0.04)


@pytest.mark.parametrize("remaining", [9, 5, 0])
def test_a_whole_second_reset_bounds_the_window_and_is_never_taken_as_a_sample(remaining):
    # Limit 10 and "1" (rounded up) from now: 10 per second, whatever Remaining says.
    learner = Learner(max_pause=60)
    answer(learner, 0.1, seq=0, sent=0.0, remaining=remaining, reset=1.0, resolution=1.0)
    assert learner.plan().interval == pytest.approx(0.1, rel=0.04)
    assert learner.plan().credit == -1  # a rounded statement is not enforced


@pytest.mark.parametrize("offset", [-2.0, -0.4, 0.0, 0.4, 2.0])
def test_epoch_resets_give_the_window_whatever_the_servers_clock_offset(offset):
    # An aligned 1-second window: the reset names the next whole second of the server's clock.
    learner = Learner(max_pause=60)
    for seq in range(30):
        sent = 0.05 + seq * 0.1
        reset = math.ceil(sent + offset + 1e-9) - offset
        answer(
            learner,
            sent + 0.1,
            seq=seq,
            sent=sent,
            remaining=9 - seq % 10,
            reset=reset,
            resolution=1.0,
            reset_server=True,
        )
        if seq == 0:
            assert learner.plan().interval == pytest.approx(0.1, rel=0.04)
    assert learner.plan().interval == pytest.approx(0.1, rel=0.04)


def test_a_named_policy_names_the_interval():
    learner = Learner(max_pause=60)
    answer(learner, 0.1, seq=0, sent=0.0, limit=20, remaining=0, reset=1.0, resolution=1.0, window=2.0)
    assert learner.plan().interval == pytest.approx(0.1, rel=0.04)  # 20 per 2 s


def test_others_spending_the_same_window_slow_us_to_what_is_left():
    # Ours every 0.1 s; the countdown falls by two each time: someone else spends as much.
    learner = Learner(max_pause=60)
    for seq in range(5):
        sent = seq * 0.1
        answer(
            learner,
            sent + 0.05,
            seq=seq,
            sent=sent,
            remaining=9 - 2 * seq,
            reset=1.001,
            resolution=1.0,
            reset_server=True,
        )
    assert learner.foreign_rate == pytest.approx(10.0, rel=0.25)
    assert learner.plan().interval > 0.15


def test_a_429_pauses_every_caller_until_a_precise_retry_after():
    learner, state = Learner(max_pause=60), Admission()
    answer(learner, 0.1, seq=0, sent=0.0, status=429, remaining=None, retry=2.15)
    assert learner.pause_until == pytest.approx(2.15)
    assert slot(learner, state, 0.2) == pytest.approx(2.15)


def test_without_fields_pacing_opens_at_one_request_per_first_latency_and_doubles_once_proven():
    learner, state = Learner(max_pause=60), Admission()
    answer(learner, 0.1, seq=0, sent=0.0, limit=None)  # answered in 100 ms: 10 a second to start
    assert learner.shape == Shape.BLIND.value
    assert learner.plan().interval == pytest.approx(0.1 * 1.01)
    assert learner.plan().cap == 0
    for seq in range(1, 6):  # four more answered over half a second: the opening rate holds
        answer(learner, 0.1 + 0.12 * seq, seq=seq, sent=0.1 * seq, limit=None)
    assert learner.blind.ok == 10
    assert learner.plan().interval == pytest.approx(0.05 * 1.01)
    assert slot(learner, state, 1.0) == 1.0


def test_without_fields_a_refusal_brackets_the_rate_and_a_round_rate_inside_is_tried_first():
    learner = Learner(max_pause=60)
    learner.blind.ok, learner.blind.rate, learner.blind.seq, learner.blind.since = 6.0, 12.0, 10, 1.0
    learner.shape = Shape.BLIND.value
    answer(learner, 1.2, seq=11, sent=1.1, limit=None)
    answer(learner, 1.3, seq=12, sent=1.2, status=429, limit=None)  # no Retry-After
    assert (learner.blind.ok, learner.blind.bad) == (6.0, 12.0)
    assert learner.blind.rate == 6.0  # back to the proven rate, after a short pause
    assert 1.3 < learner.pause_until <= 1.3 + 2 / 6.0
    # The proven rate holds for a second and a half: then 10 a second, the round rate inside.
    for n in range(1, 12):
        answer(learner, 1.3 + 0.17 * n, seq=12 + n, sent=1.2 + 0.17 * n, limit=None)
    assert learner.blind.rate == 10.0
    for n in range(1, 17):
        answer(learner, 3.2 + 0.1 * n, seq=24 + n, sent=3.1 + 0.1 * n, limit=None)
    # 10 proven, 12 refused: a proven round rate within 20% of the refused one is the limit.
    assert (learner.blind.ok, learner.blind.rate) == (10.0, 10.0)


def test_without_fields_a_second_refusal_in_a_row_waits_longer_and_teaches_nothing_new():
    learner = Learner(max_pause=60)
    learner.blind.ok, learner.blind.rate, learner.blind.seq, learner.shape = 5.0, 10.0, 10, Shape.BLIND.value
    answer(learner, 1.0, seq=10, sent=0.9, status=429, limit=None, retry=2.0)  # "Retry-After: 1"
    first = learner.pause_until
    assert first < 2.0  # whole seconds bound the wait from above: a window ends sooner
    answer(learner, first + 0.01, seq=11, sent=first, status=429, limit=None, retry=first + 1.01)
    assert (learner.blind.ok, learner.blind.bad) == (5.0, 10.0)  # the limiter had not recovered yet
    assert learner.pause_until - (first + 0.01) > first - 1.0


@example(epoch=2523318280.5174503, lag=0.013682361021737078, now=3.1911521794507025, seconds=1, fraction=0.0)
@example(epoch=1_700_000_000.0, lag=0.0, now=0.8312499999999999, seconds=1, fraction=0.0)
@given(
    epoch=st.floats(1e9, 4e9),
    lag=st.floats(0, 0.05),
    now=st.one_of(st.floats(0, 4), st.floats(0, 1e7)),  # a clock that started lately, or long ago
    seconds=st.integers(1, 3600),
    fraction=st.sampled_from([0.0, 0.001, 0.25, 0.5]),
)
def test_a_retry_after_in_whole_seconds_is_told_apart_from_a_precise_wait_whatever_the_float_error(
    epoch, lag, now, seconds, fraction
):
    # As learn() moves an answer's epoch times into the budget's time (``now`` is the budget's
    # time when the wall clock reads ``wall``): "Retry-After: 1" can come out as 0.9999999999 s
    # (near a clock's start, or where its time crosses a power of two), still a rounded second.
    received_at, wall = epoch, epoch + lag
    retry_at = received_at + seconds + fraction
    received, retry = now + (received_at - wall), now + (retry_at - wall)
    assert whole_seconds(retry - received) == (fraction == 0.0)


def counted_down(learner):
    """Three answers of one window, Remaining falling with our sends: the server runs a window."""
    for seq in range(3):
        answer(
            learner,
            0.1 * seq + 0.1,
            seq=seq,
            sent=0.1 * seq,
            remaining=9 - seq,
            reset=1.0,
            resolution=1.0,
            reset_server=True,
        )
    assert learner.countdown


def refused_at(learner, sent, *, seq, reset=4.0, reset_server=True):
    """A 429 sent at ``sent``, answered 0.1 s later with "1" to wait (a window ending at 4.0 by default)."""
    answer(
        learner,
        sent + 0.1,
        seq=seq,
        sent=sent,
        status=429,
        remaining=0,
        reset=reset,
        resolution=1.0,
        retry=sent + 1.1,
        reset_server=reset_server,
    )


def test_a_first_429_under_a_window_at_a_known_rate_costs_a_short_pause_not_a_rounded_second():
    learner = Learner(max_pause=60)
    counted_down(learner)
    interval = learner.plan().interval
    refused_at(learner, 3.0, seq=30)
    assert learner.pause_until == pytest.approx(3.1 + 2 * interval)
    refused_at(learner, 3.3, seq=31)
    assert learner.pause_until == pytest.approx(4.4)  # a second one soon after: the server's word


def test_a_buckets_429s_each_cost_one_interval():
    # Remaining stays 0 (a bucket of burst 1): a refusal lasts less than an interval, every time.
    learner = Learner(max_pause=60)
    for seq in range(3):
        answer(learner, 0.1 * seq + 0.1, seq=seq, sent=0.1 * seq, remaining=0, reset=1.0, resolution=1.0)
    for seq, sent in ((30, 3.0), (31, 3.3)):
        interval = learner.plan().interval
        refused_at(learner, sent, seq=seq, reset=sent + 1, reset_server=False)
        assert learner.pause_until == pytest.approx(sent + 0.1 + interval)


def test_a_late_send_is_made_up_for_under_a_window_but_only_by_the_margin_elsewhere():
    window, bucket = Learner(max_pause=60), Learner(max_pause=60)
    counted_down(window)
    answer(bucket, 0.1, seq=0, sent=0.0, remaining=0, reset=1.0, resolution=1.0)
    assert window.plan().catchup == pytest.approx(0.15 * window.plan().interval)
    assert bucket.plan().catchup < 0.04 * bucket.plan().interval
    state = Admission(tat=1.0)
    take(state, window.plan(), 1.01)  # 10 ms late
    assert state.tat == pytest.approx(1.0 + window.plan().interval)


def test_a_precise_reset_beats_a_retry_after_rounded_up_to_whole_seconds():
    learner = Learner(max_pause=60)
    answer(learner, 0.1, seq=0, sent=0.0, remaining=0, reset=0.1)
    # A token bucket: the next request is allowed at 0.2; Retry-After says ceil(0.1) = 1 s.
    answer(learner, 0.2, seq=1, sent=0.1, status=429, remaining=0, reset=0.2, retry=1.2)
    assert learner.pause_until < 0.25


@pytest.mark.parametrize("wait", [61.0, 100_000.0])
def test_a_pause_longer_than_max_pause_leaves_only_a_short_probing_pause(wait):
    learner = Learner(max_pause=60)
    answer(learner, 0.1, seq=0, sent=0.0, status=429, remaining=None, retry=0.1 + wait)
    assert 0.1 < learner.pause_until <= 1.1


def test_a_pause_never_outlives_what_the_server_said():
    learner = Learner(max_pause=60)
    answer(learner, 0.1, seq=0, sent=0.0, status=429, remaining=None, retry=0.35)
    assert learner.pause_until <= 0.35


def test_without_rate_fields_one_request_flies_until_the_first_answer():
    learner, state = Learner(max_pause=60), Admission()
    take(state, learner.plan(), 0.0)
    assert math.isinf(slot(learner, state, 0.0))


def test_the_learner_travels_as_plain_data():
    learner = Learner(max_pause=60)
    answer(learner, 0.1, seq=0, sent=0.0, remaining=9, reset=1.0, resolution=1.0, reset_server=True)
    again = Learner.load(orjson.loads(orjson.dumps(learner.dump())))
    assert again == learner
    assert again.plan() == learner.plan()


def test_a_learner_from_another_version_loads_what_it_knows():
    # An older release kept every field flat; a newer one may add parts. Neither stops a budget.
    older = {"max_pause": 60, "shape": "headers", "limit": 10, "st_remaining": 4, "samples": [0.1]}
    learner = Learner.load(older)
    assert (learner.shape, learner.limit, learner.statement.remaining) == ("headers", 10, -1)
    newer = Learner.load({**Learner(max_pause=60).dump(), "part_from_the_future": {"x": 1}})
    assert newer == Learner(max_pause=60)


@pytest.mark.parametrize(
    "stored", [{"max_pause": "soon"}, {"share": 1.0}, {"max_pause": 1, "precise": {"samples": ["soon"]}}]
)
def test_a_learner_of_the_wrong_shape_is_a_typed_error(stored):
    with pytest.raises(cattrs.BaseValidationError):
        Learner.load(stored)


# -- convergence: eight workers against each limiter shape, in virtual time ----

SHAPES = [
    pytest.param("fixed", "x", 0.0, 1, id="fixed-window"),
    pytest.param("sliding", "x", 0.0, 1, id="sliding-window"),
    pytest.param("token", "x", 0.0, 1, id="token-bucket-burst-1"),
    pytest.param("token", "x", 0.0, 5, id="token-bucket-burst-5"),
    pytest.param("fixed", "ietf", 0.0, 1, id="ietf-fields"),
    pytest.param("fixed", "x", 0.5, 1, id="shared-key"),
]


@pytest.mark.virtual_time
@pytest.mark.parametrize(("shape", "style", "share", "burst"), SHAPES)
@pytest.mark.parametrize(("limit", "latency"), [(10, 0.1), (20, 0.05), (100, 0.05)])
async def test_the_budget_converges_to_the_servers_rate_with_few_429s(
    shape, style, share, burst, limit, latency
):
    limiter = make_limiter(shape, limit, 1.0, burst=burst, tenant_share=share, start=1_700_000_000.0)
    rate = limit * (1 - share)
    requests = int(rate * 10)
    run = await simulate(limiter, requests=requests, spelling=Spelling(style), latency=latency)
    assert run.elapsed <= 1.10 * (requests / rate + latency)
    assert run.rate_limited <= 0.02 * requests


@pytest.mark.virtual_time
@pytest.mark.parametrize("shape", ["fixed", "sliding"])
async def test_without_rate_fields_the_rate_is_learned_from_a_handful_of_429s(shape):
    limiter = make_limiter(shape, 10, 1.0, start=1_700_000_000.0)
    run = await simulate(limiter, requests=200, spelling=Spelling("none"))
    assert run.rate_limited <= 5  # not one a window: 20 windows here
    assert run.elapsed <= 1.25 * 20


@pytest.mark.virtual_time
async def test_interactive_calls_wait_about_one_interval_during_a_saturating_import():
    limiter = make_limiter("fixed", 10, 1.0, start=1_700_000_000.0)
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
        fake.edge.fail_rate = 1.0  # every attempt fails: the first try and both retries are paced
        with pytest.raises(Exception):  # noqa: B017, PT011 - any status error
            await client.with_options(max_retries=2).dnc.get_page()
        fake.edge.fail_rate = 0.0
        await client.dnc.import_bulk([f"u{i}@example.com" for i in range(30)], batch_size=10)
    # Three failures; a fast 503 among them may be taken for a limiter's refusal, which is
    # retried past max_retries (a refusal is not a failure), so there may be more.
    failures = budget.statuses[1:-3]
    assert budget.statuses[:1] == [200]
    assert budget.statuses[-3:] == [200] * 3
    assert 3 <= len(failures) <= 3 + failures.count(503)
    assert all(status >= 500 for status in failures)
    assert budget.lanes == [Lane.INTERACTIVE] * (1 + len(failures)) + [Lane.BULK] * 3
    assert len(budget.lanes) == len(budget.statuses)


async def test_with_options_copies_share_the_clients_budget():
    async with SendKit(api_key=KEY) as client:
        copy = client.with_options(timeout=5, lane=Lane.BULK)
        assert copy.rate_budget is client.rate_budget


async def test_a_long_retry_after_raises_at_once_and_the_next_call_goes_through(wire, client, clock):
    # 50 minutes: believable, but past max_retry_wait (60 s): the call gives up at once.
    wire.get(f"{API}/v1/dnc", status=429, headers={"Retry-After": "3000"}, payload={"error": "x"})
    wire.get(f"{API}/v1/dnc", payload={"success": True, "data": [], "pagination": {}})
    with pytest.raises(RateLimitError):
        await client.dnc.get_page()
    started = clock.monotonic()
    page = await client.dnc.get_page()
    assert page.items == ()
    assert clock.monotonic() - started <= 1.0  # a short probing pause, not 50 minutes


async def test_a_retry_after_past_an_hour_is_not_believed_the_call_probes_again(wire, client, clock):
    wire.get(f"{API}/v1/dnc", status=429, headers={"Retry-After": "100000"}, payload={"error": "x"})
    wire.get(f"{API}/v1/dnc", payload={"success": True, "data": [], "pagination": {}})
    started = clock.monotonic()
    page = await client.dnc.get_page()  # 28 hours is not a wait anyone means: unknown, re-probed
    assert page.items == ()
    assert clock.monotonic() - started <= 2.0


@pytest.mark.virtual_time
async def test_five_hundred_concurrent_single_calls_through_one_client_all_succeed():
    # 20 requests per 50 ms window: 400 per second, so about 1.3 s of virtual time.
    clock = virtual_clock()
    async with (
        FakeSendKit(rate_limit=20, rate_window=0.05, clock=clock) as fake,
        fake.client(clock=clock) as client,
    ):
        ids = [fake.add_conversation(f"lead{i}@example.com") for i in range(500)]
        started = clock.monotonic()
        async with anyio.create_task_group() as group:
            for conversation in ids:
                group.start_soon(lambda c=conversation: client.inbox.update(c, ai_tag="seen"))
        elapsed = clock.monotonic() - started
        assert all(fake.conversation(c).ai_tag == "seen" for c in ids)
        assert fake.stats.rate_limited <= 0.02 * 500
        assert elapsed <= 1.10 * 500 / 400


@pytest.mark.virtual_time
async def test_four_local_budgets_on_one_key_share_it_without_starving():
    # Each sees the others only as foreign spend in the headers; none may freeze at the floor.
    clock = virtual_clock()
    spelling = Spelling(reset="epoch")
    server = Server(make_limiter("fixed", 20, 1.0, start=clock.wall()), spelling, clock, 0.15)
    budgets = [LocalBudget(clock=clock) for _ in range(4)]
    runs = [Run() for _ in budgets]

    async def worker(budget, run, jobs):
        while next(jobs) < 50:
            while not await exchange(budget, server, Lane.BULK, run):
                pass
            run.done += 1

    async def main():
        async with anyio.create_task_group() as group:
            for budget, run in zip(budgets, runs, strict=True):
                jobs = itertools.count()
                for _ in range(8):
                    group.start_soon(worker, budget, run, jobs)

    await main()
    assert all(run.done == 50 for run in runs)
    assert clock.monotonic() <= 1.5 * (200 / 20 + 0.15)
    assert sum(run.rate_limited for run in runs) <= 0.05 * 200


async def test_a_caller_cancelled_as_it_takes_a_free_gate_hands_it_on():
    """Found by the cancel-and-reuse import test: a job cancelled at that moment left the
    gate held by nobody, and the client's next job waited for it for ever."""
    gate = Gate(FakeClock())
    with anyio.CancelScope() as scope:
        scope.cancel()
        await gate.enter(Lane.BULK)  # cancelled at its checkpoint, holding the free gate
    assert scope.cancelled_caught
    assert gate.waiting == 0
    with anyio.fail_after(1):  # only a regression waits this long
        await gate.enter(Lane.BULK)
    gate.leave()

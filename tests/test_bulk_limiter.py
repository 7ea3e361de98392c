import pytest

from sendkit_async._session import Attempt
from sendkit_async.bulk import RateLimiter, TokenBucket
from sendkit_async.models import RateLimit
from sendkit_async.testing import FakeClock


def answer(clock, *, status=200, remaining=None, reset=None, limit=10, retry_after=None, sent_at=None):
    rate = None
    if remaining is not None:
        rate = RateLimit(limit=limit, remaining=remaining, reset_after=reset, observed_at=clock.monotonic())
    sent = clock.monotonic() if sent_at is None else sent_at
    return Attempt("POST", "/v1/dnc/import", status, rate, retry_after, None, sent)


async def slots(limiter, clock, count):
    times = []
    for _ in range(count):
        await limiter.acquire()
        times.append(round(clock.monotonic(), 6))
    return times


async def test_without_headers_nothing_is_paced():
    clock = FakeClock()
    assert await slots(RateLimiter(clock), clock, 5) == [0, 0, 0, 0, 0]


async def test_the_remaining_budget_is_spread_over_the_window():
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.observe(answer(clock, remaining=10, reset=1.0))
    times = await slots(limiter, clock, 11)
    assert times[:10] == pytest.approx([i / 10 for i in range(10)])
    # The window is spent: the 11th waits for the reset, then a full window is assumed.
    assert times[10] == pytest.approx(1.0)
    assert (await slots(limiter, clock, 1))[0] == pytest.approx(1.1)


async def test_requests_sent_after_the_observed_one_are_subtracted():
    clock = FakeClock()
    limiter = RateLimiter(clock)
    await slots(limiter, clock, 3)  # three sends at t=0, unpaced
    clock.advance(0.001)
    limiter.observe(answer(clock, remaining=3, reset=1.0, sent_at=-1.0))  # its request went before all three
    times = await slots(limiter, clock, 1)
    assert times == [pytest.approx(1.003)]  # 3 - 3 unseen = no budget left in this window


async def test_a_429_pauses_every_caller_once_and_they_leave_paced():
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.observe(answer(clock, remaining=0, reset=0.5, limit=4))
    limiter.observe(answer(clock, status=429, remaining=0, reset=0.5, limit=4, retry_after=2.0))
    assert limiter.paused_until == 2.0
    times = await slots(limiter, clock, 4)
    assert times[0] == pytest.approx(2.0)
    assert times == sorted(times)
    assert len(set(times)) == 4  # spread, not a stampede


async def test_a_late_answer_from_an_old_window_is_ignored():
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.observe(answer(clock, remaining=10, reset=1.0))
    clock.advance(0.9)
    limiter.observe(answer(clock, remaining=10, reset=1.0))  # the next window: resets at 1.9
    limiter.observe(answer(clock, remaining=0, reset=0.0))  # stale: from the window that ended at 1.0
    times = await slots(limiter, clock, 2)
    assert times[0] == pytest.approx(0.9)


async def test_token_bucket_caps_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock)
    times = []
    for _ in range(4):
        await bucket.acquire()
        times.append(round(clock.monotonic(), 6))
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3])


async def test_token_bucket_allows_a_burst_up_to_capacity():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, capacity=3)
    times = []
    for _ in range(5):
        await bucket.acquire()
        times.append(round(clock.monotonic(), 6))
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])


@pytest.mark.parametrize(("rate", "capacity"), [(0, 1), (-1, 1), (float("inf"), 1), (1, 0)])
def test_token_bucket_refuses_impossible_settings(rate, capacity):
    with pytest.raises(ValueError):  # noqa: PT011
        TokenBucket(rate, clock=FakeClock(), capacity=capacity)


async def test_a_fresh_answer_corrects_the_extrapolated_window_end():
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limiter.observe(answer(clock, remaining=2, reset=0.2, limit=2))  # window seems 0.2 s long
    await slots(limiter, clock, 2)
    clock.advance(0.2)
    await slots(limiter, clock, 1)  # at 0.3, rolled: assumes a window ending at 0.4
    limiter.observe(answer(clock, remaining=0, reset=0.05, limit=2))  # the server says it ends at 0.35
    # Extrapolation alone would wait for 0.4 (plus the guard); the answer says 0.35.
    assert (await slots(limiter, clock, 1))[0] == pytest.approx(0.35)

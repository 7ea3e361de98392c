from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict

from sendkit_async import RetryPolicy
from sendkit_async._fields import parse_rate_limit, parse_retry_after
from sendkit_async._retry import backoff, next_delay, should_retry

NOW = 1_700_000_000.0
POLICY = RetryPolicy()


@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, True), (408, True), (409, True), (429, True), (500, True), (503, True),
     (400, False), (401, False), (403, False), (404, False), (422, False), (200, False)],
)  # fmt: skip
def test_should_retry(status, expected):
    assert should_retry(status) is expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 7, timezone.utc), usegmt=True)}, 7.0),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW - 7, timezone.utc), usegmt=True)}, 0.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(CIMultiDict(headers), NOW) == expected


def test_parse_rate_limit_reads_x_headers():
    headers = CIMultiDict(
        {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "0.25"}
    )
    rate = parse_rate_limit(headers, observed_at=10.0, now=NOW)
    assert (rate.limit, rate.remaining, rate.reset_after, rate.resets_at) == (20, 3, 0.25, 10.25)


def test_parse_rate_limit_reads_ietf_spelling_and_epoch_resets():
    headers = CIMultiDict({"RateLimit-Limit": "100, 100;w=60", "RateLimit-Reset": str(int(NOW + 30))})
    rate = parse_rate_limit(headers, observed_at=0.0, now=NOW)
    assert (rate.limit, rate.remaining, rate.reset_after) == (100, None, 30.0)


def test_parse_rate_limit_without_headers_is_none():
    assert parse_rate_limit(CIMultiDict(), observed_at=0.0, now=NOW) is None


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 0.5), (1, 1.0), (2, 2.0), (4, 8.0), (10, 8.0)])
def test_backoff_is_full_jitter_under_a_capped_ceiling(attempt, ceiling):
    assert backoff(attempt, POLICY, lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)
    assert backoff(attempt, POLICY, lambda: 0.0) == 0.0


def delay(**kwargs):
    args = {"status": 500, "retries": 0, "rate_limit_retries": 0, "retry_after": None,
            "policy": POLICY, "rand": lambda: 0.5} | kwargs  # fmt: skip
    return next_delay(**args)


def test_retry_after_wins_over_backoff():
    assert delay(status=429, retry_after=2.0) == 2.0


def test_retry_after_beyond_the_cap_gives_up():
    assert delay(status=429, retry_after=61.0) is None
    assert delay(status=429, retry_after=61.0, policy=RetryPolicy(max_retry_wait=120)) == 61.0


def test_budgets_run_out():
    assert delay(retries=1) == 0.5
    assert delay(retries=2) is None
    assert delay(status=429, rate_limit_retries=2) is None


def test_rate_limit_budget_is_separate():
    policy = RetryPolicy(max_retries=0, max_rate_limit_retries=5)
    assert delay(status=500, policy=policy) is None
    assert delay(status=429, rate_limit_retries=4, policy=policy) is not None


def test_client_errors_are_never_retried():
    assert delay(status=400) is None


def test_a_run_of_429s_past_max_refused_for_gives_up() -> None:
    from sendkit_async import RetryPolicy  # noqa: PLC0415

    policy = RetryPolicy(max_retries=2, max_rate_limit_retries=30, max_refused_for=120.0)
    again = {
        "retries": 0,
        "rate_limit_retries": 3,
        "retry_after": None,
        "policy": policy,
        "rand": lambda: 0.5,
    }
    assert next_delay(status=429, refused_for=119.0, **again) is not None
    assert next_delay(status=429, refused_for=120.0, **again) is None
    assert next_delay(status=503, refused_for=500.0, **again) is not None  # only 429s count


def test_no_retry_starts_past_the_calls_own_time_limit() -> None:
    from sendkit_async import RetryPolicy  # noqa: PLC0415

    again = {"retries": 0, "rate_limit_retries": 0, "policy": RetryPolicy(max_retries=5), "rand": lambda: 0.5}
    assert next_delay(status=503, retry_after=None, time_left=10.0, **again) == 0.25
    assert next_delay(status=503, retry_after=None, time_left=0.2, **again) is None  # the backoff outlasts it
    assert next_delay(status=None, retry_after=None, time_left=0.0, **again) is None
    assert next_delay(status=429, retry_after=5.0, time_left=4.0, **again) is None

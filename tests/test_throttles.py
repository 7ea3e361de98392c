"""A limiter's refusal that is not a 429: nginx's 503, a throttling 403, a wait in a body."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from sendkit_async import PermissionDeniedError, RetryPolicy, SendKit
from sendkit_async._throttle import GUESSED_REFUSALS, Throttles, said_so
from sendkit_async.testing import DEFAULT_PLATFORM_KEY, FakeClock, FakeSendKit

from .conftest import API, KEY
from .wire import Wire

NGINX_503 = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
IMPORT = f"{API}/v1/dnc/import"


def working(latency: float = 0.15) -> Throttles:
    throttles = Throttles()
    throttles.success(latency, now=10.0)
    return throttles


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        ({"Retry-After": "1"}, "", "a Retry-After"),
        ({"retry-after-ms": "200"}, "", "a retry-after-ms"),
        ({}, '{"error": {"message": "slow", "retry_after": 2}}', "a wait in the body"),
        ({}, '{"policyName": "SECONDLY"}', "a policy in the body"),
        ({}, "Rate limit exceeded", "a rate limit named"),
        ({}, '{"message": "Too Many Requests"}', "too many requests"),
        ({}, "You are being throttled", "throttled"),
        ({}, "API quota exhausted", "a quota"),
    ],
)
def test_a_503_or_403_that_says_it_is_a_limiters_is_a_refusal_however_slow(headers, body, why):
    import orjson  # noqa: PLC0415

    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        decoded = None
    assert said_so(CIMultiDict(headers), body, decoded, None), why
    for status in (503, 403):
        assert Throttles().refused(status, said=True, latency=5.0, now=0.0)


def test_nginxs_bare_503_is_a_refusal_when_it_comes_back_at_once_while_requests_succeed():
    assert not said_so({}, NGINX_503, None, None)  # nothing in it names a limit
    throttles = working(latency=0.15)
    assert throttles.refused(503, said=False, latency=0.002, now=10.5)
    # The server's own 503 comes after its work; and with no success yet, nothing to compare.
    assert not throttles.refused(503, said=False, latency=0.2, now=10.5)
    assert not Throttles().refused(503, said=False, latency=0.002, now=0.0)
    # Successes a while ago say nothing about now.
    assert not throttles.refused(503, said=False, latency=0.002, now=100.0)


def test_a_bare_403_is_a_throttle_only_for_a_key_that_works_and_only_a_few_times_in_a_row():
    throttles = working()
    assert throttles.refused(403, said=False, latency=0.002, now=10.5)
    assert throttles.refused(403, said=False, latency=0.002, now=10.5, guessed=GUESSED_REFUSALS - 1)
    assert not throttles.refused(403, said=False, latency=0.002, now=10.5, guessed=GUESSED_REFUSALS)
    # A fast bare 503 is guessed at the same few times in a row; one that says so, always.
    assert not throttles.refused(503, said=False, latency=0.002, now=10.5, guessed=GUESSED_REFUSALS)
    assert throttles.refused(503, said=True, latency=0.002, now=10.5, guessed=GUESSED_REFUSALS)
    assert not Throttles().refused(403, said=False, latency=0.002, now=0.0)  # never worked: a real 403


@pytest.mark.parametrize("status", [400, 401, 404, 500, 502])
def test_other_statuses_are_never_a_limiters(status):
    assert not working().refused(status, said=True, latency=0.001, now=10.5)


def test_429_and_420_always_are():
    assert Throttles().refused(429, said=False, latency=9.0, now=0.0)
    assert Throttles().refused(420, said=False, latency=9.0, now=0.0)


@pytest.mark.parametrize(
    ("options", "what"),
    [
        ({"refusal_status": 503, "rate_headers": "none"}, "nginx's 503 with Retry-After"),
        ({"refusal_status": 503, "rate_headers": "none", "retry_after_style": "none"}, "a bare 503"),
        ({"refusal_status": 403, "rate_headers": "none", "retry_after_style": "none"}, "Mailchimp's 403"),
        ({"rate_headers": "none", "retry_after_style": "body"}, "Smartlead's wait in the body"),
        ({"reset_style": "seconds", "policy_in_body": True}, "HubSpot's policy"),
        ({"reset_style": "js-date"}, "lemlist's dates"),
        ({"rate_headers": "kong", "extra_windows": [(40, 60.0)]}, "Kong's windows"),
    ],
)
async def test_an_import_behind_every_dialect_stores_everything_and_counts_each_refusal(options, what):
    async with FakeSendKit(rate_limit=20, latency=0.01, **options) as fake, fake.client() as client:
        report = await client.dnc.import_bulk([f"u{i}@example.com" for i in range(600)], batch_size=20)
    assert report.imported == 600, what
    assert report.failed == ()
    assert len(fake.dnc_emails()) == 600
    assert report.rate_limited == fake.stats.rate_limited  # every refusal seen as one, whatever its status
    assert fake.stats.by_route["POST /v1/dnc/import"] == report.requests


async def test_a_real_403_of_a_key_without_access_still_raises_at_once():
    async with (
        FakeSendKit() as fake,
        fake.client(api_key=DEFAULT_PLATFORM_KEY, workspace_id="ws_nobody") as c,
    ):
        with pytest.raises(PermissionDeniedError):
            await c.dnc.get_page()
        assert fake.stats.requests == 1


async def test_a_403_after_successes_is_retried_a_few_times_then_raises():
    wire = Wire()
    wire.get(f"{API}/v1/dnc?limit=1", payload={"data": [], "pagination": {"total": 0}})
    wire.post(IMPORT, status=403, body="", repeat=True)
    async with SendKit(api_key=KEY, clock=FakeClock(), transport=wire) as client:
        await client.dnc.get_page(limit=1)
        with pytest.raises(PermissionDeniedError):
            await client.dnc.import_entries(["a@example.com"])
    tries = min(RetryPolicy().rate_limit_retries, GUESSED_REFUSALS) + 1
    assert len(wire.sent("POST")) == tries


async def test_a_daily_policy_refusal_gives_up_at_once_instead_of_spinning():
    body = {"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY", "message": "daily limit"}
    wire = Wire()
    wire.post(IMPORT, status=429, payload=body, repeat=True)
    clock = FakeClock()
    async with SendKit(api_key=KEY, clock=clock, transport=wire) as client:
        with pytest.raises(Exception, match="daily limit"):
            await client.dnc.import_entries(["a@example.com"])
    assert len(wire.sent()) == 1
    assert clock.monotonic() < 2.0

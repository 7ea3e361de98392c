"""Vendors' dialects of rate-limit fields: dates for resets, waits and policies in bodies, many windows.

The expected values are worked out here from the vendors' documented formats
(JavaScript's ``Date.toString()``, RFC 9110 dates, Kong's per-period fields,
the IETF draft's lists), never from the parser under test.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from sendkit_async._fields import parse_date, parse_rate_limit, parse_retry_after
from sendkit_async._throttle import policy_window, retry_after_in_body

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def js_date(epoch: int, offset_minutes: int) -> str:
    """What JavaScript's ``new Date(epoch * 1000).toString()`` prints in a zone ``offset_minutes`` east."""
    zone = timezone(timedelta(minutes=offset_minutes))
    moment = datetime.fromtimestamp(epoch, zone)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return (
        f"{DAYS[moment.weekday()]} {MONTHS[moment.month - 1]} {moment.day:02d} {moment.year} "
        f"{moment:%H:%M:%S} GMT{sign}{hours:02d}{minutes:02d} (Some Standard Time)"
    )


def test_lemlists_javascript_date_reset_is_read_as_an_epoch_second():
    # lemlist's own example: "Tue Feb 16 2021 09:02:42 GMT+0100 (Central European Standard Time)".
    text = "Tue Feb 16 2021 09:02:42 GMT+0100 (Central European Standard Time)"
    assert parse_date(text) == datetime(2021, 2, 16, 8, 2, 42, tzinfo=timezone.utc).timestamp()
    headers = CIMultiDict(
        {
            "X-RateLimit-Limit": "20",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset": js_date(int(NOW) + 3, 60),
        }
    )
    rate = parse_rate_limit(headers, observed_at=5.0, now=NOW)
    assert rate is not None
    assert (rate.limit, rate.remaining, rate.reset_after) == (20, 4, 3.0)
    assert rate.reset_epoch == NOW + 3
    assert rate.reset_resolution == 1.0  # a date names a whole second


@given(
    st.integers(min_value=946_684_800, max_value=4_102_444_800),
    st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: m - m % 15),
)
def test_any_javascript_date_in_any_zone_names_its_moment(epoch, offset):
    assert parse_date(js_date(epoch, offset)) == epoch


@given(st.integers(min_value=946_684_800, max_value=4_102_444_800))
def test_any_http_date_names_its_moment(epoch):
    text = format_datetime(datetime.fromtimestamp(epoch, timezone.utc), usegmt=True)
    assert parse_date(text) == epoch
    rate = parse_rate_limit(
        CIMultiDict({"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": text}),
        observed_at=0.0,
        now=epoch - 2.0,
    )
    assert rate is not None
    assert rate.reset_after == 2.0


@pytest.mark.parametrize(
    "text",
    ["2023-11-14T22:13:23Z", "2023-11-14T22:13:23+00:00", "2023-11-14T23:13:23+01:00", "2023-11-14T22:13:23"],
)
def test_iso_8601_resets_name_their_moment(text):
    assert parse_date(text) == NOW + 3


@pytest.mark.parametrize(
    "text", ["soon", "", "Tue Foo 16 2021 09:02:42", "Tue Feb 31 2021 09:02:42 GMT+0100"]
)
def test_what_is_not_a_date_is_not_read_as_one(text):
    assert parse_date(text) is None
    rate = parse_rate_limit(CIMultiDict({"X-RateLimit-Reset": text}), observed_at=0.0, now=NOW)
    assert rate is None


@pytest.mark.parametrize(
    ("body", "wait"),
    [
        ({"error": {"message": "Rate limit exceeded", "retry_after": 3}}, 3.0),  # Smartlead
        ({"error": "Too Many Requests", "retry_after": "2.5"}, 2.5),
        ({"retryAfter": 4}, 4.0),
        ({"error": {"retry_after_ms": 1500}}, 1.5),
        ({"retry_after": -3}, 0.0),
        ({"retry_after": 10**9}, None),  # past an hour: not believed
        ({"retry_after": True}, None),
        ({"retry_after": "soon"}, None),
        ({"message": "slow down"}, None),
        (["retry_after", 3], None),
        (None, None),
    ],
)
def test_a_wait_in_the_body_is_read_where_vendors_put_it(body, wait):
    assert retry_after_in_body(body) == wait


@pytest.mark.parametrize(
    ("body", "window"),
    [
        ({"status": "error", "errorType": "RATE_LIMIT", "policyName": "SECONDLY"}, 1.0),  # HubSpot
        ({"policyName": "TEN_SECONDLY"}, 10.0),
        ({"policyName": "DAILY"}, 86400.0),
        ({"error": {"policyName": "minutely"}}, 60.0),
        ({"policyName": "FORTNIGHTLY"}, None),
        ({"policyName": 3}, None),
    ],
)
def test_a_policy_named_in_the_body_is_its_window(body, window):
    assert policy_window(body) == window


def test_kongs_windows_are_read_and_the_shortest_paces():
    # Kong 3.x: X-RateLimit-{Limit,Remaining}-{Second,Minute,...}, and RateLimit-* of the tightest.
    headers = CIMultiDict(
        {
            "X-RateLimit-Limit-Second": "10",
            "X-RateLimit-Remaining-Second": "7",
            "X-RateLimit-Limit-Minute": "300",
            "X-RateLimit-Remaining-Minute": "120",
            "RateLimit-Limit": "10",
            "RateLimit-Remaining": "7",
            "RateLimit-Reset": "1",
        }
    )
    rate = parse_rate_limit(headers, observed_at=0.0, now=NOW + 0.25)
    assert rate is not None
    assert (rate.limit, rate.remaining, rate.window, rate.reset_after) == (10, 7, 1.0, 1.0)
    assert [(w.limit, w.remaining, w.seconds) for w in rate.windows] == [(10, 7, 1.0), (300, 120, 60.0)]
    assert rate.blocked_after is None


def test_a_longer_kong_window_with_nothing_left_blocks_until_it_resets():
    # The minute is spent: RateLimit-* now describe it (the tightest), 40 s to go.
    headers = CIMultiDict(
        {
            "X-RateLimit-Limit-Second": "10",
            "X-RateLimit-Remaining-Second": "9",
            "X-RateLimit-Limit-Minute": "300",
            "X-RateLimit-Remaining-Minute": "0",
            "RateLimit-Limit": "300",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": "40",
        }
    )
    rate = parse_rate_limit(headers, observed_at=0.0, now=NOW)
    assert rate is not None
    assert rate.blocked_after == 40.0
    assert rate.limit == 10  # the second still paces; the minute blocks


def test_a_kong_window_without_its_reset_is_taken_to_end_on_the_epochs_multiple():
    headers = CIMultiDict(
        {
            "X-RateLimit-Limit-Second": "10",
            "X-RateLimit-Remaining-Second": "9",
            "X-RateLimit-Limit-Hour": "1000",
            "X-RateLimit-Remaining-Hour": "0",
        }
    )
    rate = parse_rate_limit(headers, observed_at=0.0, now=NOW)  # 22:13:20: 46 min 40 s to the hour
    assert rate is not None
    assert rate.blocked_after == 2800.0


def test_the_ietf_drafts_list_of_policies_is_several_windows():
    headers = CIMultiDict(
        {
            "RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
            "RateLimit": '"burst";r=40;t=12, "daily";r=0;t=1800',
        }
    )
    rate = parse_rate_limit(headers, observed_at=0.0, now=NOW)
    assert rate is not None
    assert (rate.limit, rate.remaining, rate.window, rate.reset_after) == (100, 40, 60.0, 12.0)
    assert rate.blocked_after == 1800.0


def test_retry_after_dates_in_any_of_the_three_http_forms():
    moment = NOW + 5
    for text in (
        format_datetime(datetime.fromtimestamp(moment, timezone.utc), usegmt=True),
        "Tuesday, 14-Nov-23 22:13:25 GMT",  # RFC 850
        "Tue Nov 14 22:13:25 2023",  # asctime
    ):
        assert parse_retry_after(CIMultiDict({"Retry-After": text}), NOW) == 5.0, text

"""The session over aiohttp itself (aioresponses patches aiohttp's request): retries, errors, headers, bodies.

The other suites script the wire through ``tests.wire.Wire`` (a MockTransport);
these mean to exercise the real transport, so they patch aiohttp.
"""

import asyncio
import inspect
import logging
import re
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import aioresponses.core as aioresponses_core
import pytest
import pytest_asyncio
from aiohttp import ClientResponse
from aioresponses import aioresponses

from sendkit_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SendKit,
    UnexpectedResponseError,
    UnprocessableEntityError,
)
from sendkit_async.testing import FakeClock

from .conftest import API, KEY, PLATFORM_KEY

OK = {"success": True, "data": {"imported": 1, "skipped": 0}}
IMPORT = f"{API}/v1/dnc/import"
LIST = re.compile(rf"^{API}/v1/dnc(\?.*)?$")


class _CompatResponse(ClientResponse):
    """aioresponses 0.7.x builds responses without the ``stream_writer`` that
    aiohttp 3.14 (a security release) requires; supply a finished writer.
    Upstream: pnuckowski/aioresponses#289.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(*args, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as mock:
        yield mock


@pytest_asyncio.fixture
async def client(clock: FakeClock, mocked: aioresponses) -> AsyncIterator[SendKit]:  # noqa: ARG001
    """A client on aiohttp (its default transport), whose requests ``mocked`` answers."""
    async with SendKit(api_key=KEY, clock=clock) as sendkit:
        yield sendkit


def sent(mock: aioresponses) -> list[tuple[str, str, dict]]:
    """Every request aioresponses saw, as (method, url, kwargs)."""
    return [
        (method, str(url), call.kwargs) for (method, url), calls in mock.requests.items() for call in calls
    ]


async def test_every_request_carries_auth_json_and_user_agent(client, mocked):
    mocked.post(IMPORT, payload=OK)
    await client.dnc.import_entries(["a@example.com"])
    [(_, _, kwargs)] = sent(mocked)
    headers = kwargs["headers"]
    assert headers["X-Api-Key"] == KEY
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"sendkit-async/\S+ Python/\S+ aiohttp/\S+", headers["User-Agent"])
    assert "X-Workspace-Id" not in headers


async def test_platform_keys_send_the_workspace_header(mocked):
    mocked.post(IMPORT, payload=OK)
    async with SendKit(api_key=PLATFORM_KEY, workspace_id="ws_9") as client:
        await client.dnc.import_entries(["a@example.com"])
    [(_, _, kwargs)] = sent(mocked)
    assert kwargs["headers"]["X-Workspace-Id"] == "ws_9"


async def test_extra_headers_cannot_override_auth(mocked):
    mocked.post(IMPORT, payload=OK)
    async with SendKit(api_key=KEY, headers={"X-Api-Key": "sk_other", "X-Trace": "t1"}) as client:
        await client.dnc.import_entries(["a@example.com"])
    [(_, _, kwargs)] = sent(mocked)
    assert kwargs["headers"]["X-Api-Key"] == KEY
    assert kwargs["headers"]["X-Trace"] == "t1"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
        (418, APIStatusError),
    ],
)
async def test_status_maps_to_its_error_class(mocked, status, error_class):
    body = {"error": "Some Error", "message": "what went wrong", "code": status}
    mocked.post(IMPORT, status=status, payload=body, headers={"X-Request-Id": "req_1"}, repeat=True)
    async with SendKit(api_key=KEY, max_retries=0) as client:
        with pytest.raises(error_class) as caught:
            await client.dnc.import_entries(["a@example.com"])
    error = caught.value
    assert type(error) is error_class
    assert (error.status, error.error, error.message, error.code) == (
        status,
        "Some Error",
        "what went wrong",
        status,
    )
    assert error.request_id == "req_1"
    assert "what went wrong" in str(error)


async def test_documented_not_found_body_is_parsed(client, mocked):
    body = {"error": "Not Found", "message": "The requested resource was not found", "code": 404}
    mocked.patch(f"{API}/v1/inbox/664a1b2c3d4e5f6a7b8c9d0e", status=404, payload=body)
    with pytest.raises(NotFoundError, match="The requested resource was not found"):
        await client.inbox.update("664a1b2c3d4e5f6a7b8c9d0e", mark_read=True)


async def test_an_html_error_page_still_gives_a_useful_error(client, mocked):
    page = "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
    mocked.post(IMPORT, status=502, body=page, content_type="text/html", repeat=True)
    with pytest.raises(InternalServerError) as caught:
        await client.with_options(max_retries=0).dnc.import_entries(["a@example.com"])
    assert caught.value.message == "502 Bad Gateway nginx"
    assert caught.value.body == page


async def test_a_problem_document_gives_title_and_detail(client, mocked):
    problem = {"type": "about:blank", "title": "Unprocessable", "detail": "entries[0] is odd", "status": 422}
    mocked.post(IMPORT, status=422, payload=problem, content_type="application/problem+json")
    with pytest.raises(UnprocessableEntityError) as caught:
        await client.dnc.import_entries(["a@example.com"])
    assert (caught.value.error, caught.value.message, caught.value.code) == (
        "Unprocessable",
        "entries[0] is odd",
        422,
    )


async def test_a_2xx_that_is_not_json_is_an_unexpected_response(client, mocked):
    mocked.post(IMPORT, status=200, body="<html>login</html>", content_type="text/html")
    with pytest.raises(UnexpectedResponseError, match="not JSON"):
        await client.dnc.import_entries(["a@example.com"])


async def test_a_2xx_of_another_shape_is_an_unexpected_response(client, mocked):
    mocked.post(IMPORT, status=200, payload={"imported": 1})
    with pytest.raises(UnexpectedResponseError, match="envelope"):
        await client.dnc.import_entries(["a@example.com"])


async def test_429_with_retry_after_waits_that_long_on_the_clock(client, clock, mocked):
    mocked.post(IMPORT, status=429, payload={"error": "Too Many Requests"}, headers={"Retry-After": "2"})
    mocked.post(IMPORT, payload=OK)
    result = await client.dnc.import_entries(["a@example.com"])
    assert result.imported == 1
    assert clock.sleeps == [2.0]
    assert clock.monotonic() == 2.0


def backoffs(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The retry delays the session chose, as it logs them.

    Not ``clock.sleeps``: that also holds the rate budget's waits (with no
    rate-limit fields it paces its opening at about one request per latency).
    """
    found = (re.search(r"retrying in ([0-9.]+)s", record.getMessage()) for record in caplog.records)
    return [float(match.group(1)) for match in found if match]


async def test_500_is_retried_twice_then_raises(client, mocked, caplog):
    mocked.post(IMPORT, status=500, payload={"error": "Internal Server Error"}, repeat=True)
    with pytest.raises(InternalServerError):
        await client.dnc.import_entries(["a@example.com"])
    assert len(sent(mocked)) == 3
    delays = backoffs(caplog)
    assert len(delays) == 2
    assert delays[0] <= 0.5
    assert delays[1] <= 1.0


async def test_400_is_never_retried(client, clock, mocked):
    mocked.post(IMPORT, status=400, payload={"error": "Bad Request", "message": "no"}, repeat=True)
    with pytest.raises(BadRequestError):
        await client.dnc.import_entries(["a@example.com"])
    assert len(sent(mocked)) == 1
    assert clock.sleeps == []


async def test_a_retry_after_longer_than_the_cap_raises_at_once(client, clock, mocked):
    mocked.post(IMPORT, status=429, headers={"Retry-After": "3600"}, payload={}, repeat=True)
    with pytest.raises(RateLimitError) as caught:
        await client.dnc.import_entries(["a@example.com"])
    assert caught.value.retry_after == 3600
    assert clock.sleeps == []


async def test_dropped_connections_are_retried_then_raise(client, mocked, caplog):
    mocked.post(IMPORT, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    with pytest.raises(APIConnectionError) as caught:
        await client.dnc.import_entries(["a@example.com"])
    assert not isinstance(caught.value, APIStatusError)
    assert len(backoffs(caplog)) == 2


async def test_timeouts_are_their_own_error(client, mocked):
    mocked.post(IMPORT, exception=asyncio.TimeoutError(), repeat=True)
    with pytest.raises(APITimeoutError):
        await client.dnc.import_entries(["a@example.com"])


async def test_a_transient_failure_then_success_returns_the_result(client, mocked):
    mocked.post(IMPORT, exception=aiohttp.ClientConnectionError("reset"))
    mocked.post(IMPORT, status=503, payload={})
    mocked.post(IMPORT, payload=OK)
    assert (await client.dnc.import_entries(["a@example.com"])).imported == 1


async def test_cancelling_during_a_backoff_stops_at_once(mocked):
    clock = FakeClock(auto_advance=False)
    mocked.post(IMPORT, status=503, payload={}, repeat=True)
    async with SendKit(api_key=KEY, clock=clock) as client:
        task = asyncio.create_task(client.dnc.import_entries(["a@example.com"]))
        # The first sleeper is the budget wait's timer (max_queue_wait); the backoff comes after the 503.
        while not sent(mocked) or clock.waiting == 0:  # noqa: ASYNC110 - polling the fake clock is the point
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(sent(mocked)) == 1


async def test_cancelling_during_a_request_propagates(mocked):
    started = asyncio.Event()

    async def hang(*_args, **_kwargs):
        started.set()
        await asyncio.Event().wait()

    mocked.post(IMPORT, callback=hang)
    async with SendKit(api_key=KEY) as client:
        task = asyncio.create_task(client.dnc.import_entries(["a@example.com"]))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_latest_rate_limit_headers_are_remembered(client, mocked):
    limits = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "19", "X-RateLimit-Reset": "0.5"}
    mocked.post(IMPORT, payload=OK, headers=limits)
    assert client.rate_limit is None
    await client.dnc.import_entries(["a@example.com"])
    assert (client.rate_limit.limit, client.rate_limit.remaining, client.rate_limit.reset_after) == (
        20,
        19,
        0.5,
    )


async def test_a_closed_client_refuses_requests():
    client = SendKit(api_key=KEY)
    await client.close()
    assert client.closed
    with pytest.raises(ClientClosedError, match="closed"):
        await client.dnc.import_entries(["a@example.com"])


async def test_a_borrowed_session_stays_open(mocked):
    mocked.post(IMPORT, payload=OK)
    async with aiohttp.ClientSession() as borrowed:
        async with SendKit(api_key=KEY, session=borrowed) as client:
            await client.dnc.import_entries(["a@example.com"])
        assert not borrowed.closed


async def test_with_options_shares_the_pool_and_overrides(client, mocked):
    mocked.post(IMPORT, status=500, payload={}, repeat=True)
    patient = client.with_options(max_retries=4, timeout=300, headers={"X-Trace": "t"})
    assert patient.session.scope is client.session.scope
    assert patient.session.config.timeout.total == 300
    with pytest.raises(InternalServerError):
        await patient.dnc.import_entries(["a@example.com"])
    assert len(sent(mocked)) == 5
    await patient.close()
    assert not client.closed


async def test_generic_request_uses_the_same_auth_and_errors(client, mocked):
    mocked.get(f"{API}/v1/campaigns?limit=5&active=true", payload={"success": True, "data": []})
    mocked.get(
        f"{API}/v1/missing", status=404, payload={"error": "Not Found", "message": "nope", "code": 404}
    )
    body = await client.request("GET", "/v1/campaigns", params={"limit": 5, "active": True, "skip": None})
    assert body == {"success": True, "data": []}
    with pytest.raises(NotFoundError):
        await client.request("GET", "/v1/missing")
    assert all(kwargs["headers"]["X-Api-Key"] == KEY for _, _, kwargs in sent(mocked))


async def test_the_key_never_reaches_errors_or_logs(client, mocked, caplog):
    echo = {"error": "Unauthorized", "message": f"bad key {KEY}", "code": 401}
    mocked.post(IMPORT, status=401, payload=echo)
    mocked.post(IMPORT, exception=aiohttp.ClientConnectionError(f"proxy said {KEY}"), repeat=True)
    caplog.set_level(logging.DEBUG, logger="sendkit_async")
    errors = []
    for _ in range(2):
        try:
            await client.dnc.import_entries(["a@example.com"])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    assert [type(e) for e in errors] == [AuthenticationError, APIConnectionError]
    for error in errors:
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in repr(vars(error))
    assert caplog.records
    assert KEY not in caplog.text


def test_sendkit_log_turns_on_one_line_per_attempt_on_stderr_without_the_key(monkeypatch, capsys):
    import asyncio  # noqa: PLC0415

    from sendkit_async._logs import _Handler, logger  # noqa: PLC0415
    from sendkit_async.testing import FakeSendKit  # noqa: PLC0415

    monkeypatch.setenv("SENDKIT_LOG", "info")
    level = logger.level

    async def scenario():
        async with FakeSendKit() as fake, fake.client() as client:
            await client.dnc.get_page()
            return fake.api_key

    try:
        key = asyncio.run(scenario())
    finally:
        for handler in [h for h in logger.handlers if isinstance(h, _Handler)]:
            logger.removeHandler(handler)
        logger.setLevel(level)
    err = capsys.readouterr().err
    assert "GET /v1/dnc -> 200" in err
    assert "(attempt 1" in err
    assert key not in err

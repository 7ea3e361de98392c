"""The transport seam: every attempt is one ``send``; a scripted transport stands in for the wire."""

from __future__ import annotations

import pytest
from yarl import URL

from sendkit_async import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    SendKit,
    TransportError,
    TransportTimeoutError,
)
from sendkit_async.testing import MockTransport, json_response
from sendkit_async.transport import WireRequest, WireResponse

from .conftest import KEY

PAGE = {"data": [], "pagination": {"page": 1, "limit": 50, "total": 0, "totalPages": 0}}


async def test_each_attempt_is_one_send_with_the_auth_headers_and_the_query_in_the_url(clock):
    answers = [json_response(500, {"error": "oops"}), json_response(200, PAGE)]
    transport = MockTransport(lambda _request: answers.pop(0))
    async with SendKit(api_key=KEY, clock=clock, transport=transport) as client:
        page = await client.dnc.get_page(page=2, limit=10)
    assert page.items == ()
    assert len(transport.requests) == 2  # one failed attempt, one retry
    sent = transport.requests[-1]
    assert sent.method == "GET"
    assert sent.url.path == "/v1/dnc"
    assert dict(sent.url.query) == {"page": "2", "limit": "10"}
    assert sent.headers["X-Api-Key"] == KEY
    assert KEY not in repr(sent)  # the headers stay out of the repr
    assert transport.closed  # closing the client closes its transport


async def test_an_async_handler_and_a_429_with_retry_after_are_told_to_the_budget(clock):
    calls = 0

    async def handler(_request: WireRequest) -> WireResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return json_response(429, {"error": "Too Many Requests"}, {"Retry-After": "2"})
        return json_response(200, PAGE)

    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler)) as client:
        started = clock.monotonic()
        await client.dnc.get_page()
        assert clock.monotonic() - started >= 2  # the budget held the retry for the server's pause
    assert calls == 2


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (TransportTimeoutError("no answer in time"), APITimeoutError),
        (TransportError("reset"), APIConnectionError),
    ],
)
async def test_no_answer_from_the_transport_is_a_connection_error_naming_the_call(clock, raised, expected):
    def handler(_request):
        raise raised

    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler), max_retries=0) as client:
        with pytest.raises(expected) as caught:
            await client.dnc.get_page()
    assert caught.value.method == "GET"
    assert caught.value.path == "/v1/dnc"


async def test_a_transport_message_that_echoes_the_key_is_redacted(clock):
    def handler(_request):
        raise TransportError(f"proxy refused key {KEY}")

    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler), max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.dnc.get_page()
    assert KEY not in str(caught.value)
    assert "[redacted]" in str(caught.value)


async def test_problem_documents_and_gateway_pages_map_to_typed_errors(clock):
    def handler(request: WireRequest) -> WireResponse:
        if request.method == "POST":
            return WireResponse(
                404,
                {"Content-Type": "application/problem+json", "X-Request-Id": "req-1"},
                b'{"title": "Not Found", "detail": "no such conversation", "status": 404}',
            )
        page = b"<html><body><h1>Slow down</h1></body></html>"
        return WireResponse(429, {"Content-Type": "text/html"}, page)

    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler), max_retries=0) as client:
        with pytest.raises(NotFoundError) as missing:
            await client.inbox.mark_read(["0123456789abcdef01234567"])
        with pytest.raises(RateLimitError) as slow:
            await client.dnc.get_page()
    assert (missing.value.error, missing.value.message, missing.value.request_id) == (
        "Not Found",
        "no such conversation",
        "req-1",
    )
    assert slow.value.message == "Slow down"


def test_a_transport_and_a_session_together_are_refused():
    with pytest.raises(ConfigurationError, match="not both"):
        SendKit(api_key=KEY, transport=MockTransport(lambda _r: json_response(200)), session=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="transport must"):
        SendKit(api_key=KEY, transport=object())  # type: ignore[arg-type]


def test_wire_types_normalise_headers_and_keep_the_url():
    response = WireResponse(200, {"x-request-id": "abc"})
    assert response.headers["X-Request-Id"] == "abc"
    request = WireRequest("GET", URL("https://api.example.com/v1/dnc?page=1"), {"X-Api-Key": "k"})
    assert request.url.query["page"] == "1"

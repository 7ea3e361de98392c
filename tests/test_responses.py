"""Results keep the answer they came in: ``result.request_id`` and ``result.response``."""

from __future__ import annotations

import pytest

from sendkit_async import ResponseInfo, SendKit, Timeout
from sendkit_async.testing import FakeSendKit, MockTransport, json_response

from .conftest import KEY


async def test_every_result_model_carries_its_request_id_and_response():
    async with FakeSendKit(rate_limit=100) as fake, fake.client() as client:
        conversation = fake.add_conversation("lead@example.com")
        results = [
            await client.dnc.import_entries(["a@example.com"]),
            await client.dnc.get_page(limit=1),
            await client.inbox.mark_read([conversation]),
            await client.inbox.add_leads_to_dnc([conversation]),
            await client.inbox.update(conversation, tags=[]),
        ]
    ids = [result.request_id for result in results]
    assert all(i is not None and i.startswith("req_") for i in ids)
    assert len(set(ids)) == len(ids)
    for result in results:
        assert isinstance(result.response, ResponseInfo)
        assert result.response.status == 200
        assert result.response.headers["x-request-id"] == result.request_id  # case-insensitive
        assert "X-RateLimit-Limit" in result.response.headers
        assert "response" not in result.to_dict()
        assert "request_id" not in repr(result)


async def test_the_response_is_not_part_of_equality(clock):
    answers = iter(["r1", "r2"])

    def handler(_request):
        return json_response(200, {"success": True, "data": {"modified": 1}}, {"X-Request-Id": next(answers)})

    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler)) as client:
        first = await client.inbox.mark_read(["a" * 24])
        second = await client.inbox.mark_read(["a" * 24])
    assert (first.request_id, second.request_id) == ("r1", "r2")
    assert first == second


async def test_a_request_id_echoing_the_key_is_redacted(clock):
    def handler(_request):
        return json_response(200, {"success": True, "data": {"modified": 1}}, {"X-Request-Id": f"id-{KEY}"})

    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler)) as client:
        result = await client.inbox.mark_read(["a" * 24])
    assert KEY not in (result.request_id or "")


@pytest.mark.parametrize("size", [1, 2500])
async def test_a_result_summed_over_chunks_has_no_single_response(size):
    async with FakeSendKit() as fake, fake.client() as client:
        ids = [fake.add_conversation(f"lead{i}@example.com") for i in range(size)]
        result = await client.inbox.mark_read(ids)
    assert result.modified == size
    assert (result.response is None) == (size > 1000)


async def test_every_endpoint_takes_a_per_call_timeout_and_extra_headers(clock):
    seen = []
    page = {"success": True, "data": [], "pagination": {"total": 0, "page": 1, "limit": 1, "pages": 0}}

    def handler(request):
        seen.append(request)
        path = request.url.path
        if path == "/v1/dnc/import":
            return json_response(200, {"success": True, "data": {"imported": 1, "skipped": 0}})
        if path == "/v1/dnc":
            return json_response(200, page)
        if path == "/v1/inbox/mark-read":
            return json_response(200, {"success": True, "data": {"modified": 1}})
        if path == "/v1/inbox/dnc":
            return json_response(200, {"success": True, "data": {"added": 1, "skipped": 0, "total": 1}})
        return json_response(200, {"success": True, "data": {"id": "a" * 24, "tags": []}})

    extra = {"X-Trace": "t-1", "X-Api-Key": "not-this"}
    async with SendKit(api_key=KEY, clock=clock, transport=MockTransport(handler), timeout=30) as client:
        await client.dnc.import_entries(["a@example.com"], timeout=5, extra_headers=extra)
        await client.dnc.get_page(limit=1, timeout=5, extra_headers=extra)
        [_ async for _ in client.dnc.list(limit=1, timeout=5, extra_headers=extra)]
        await client.inbox.mark_read(["a" * 24], timeout=5, extra_headers=extra)
        await client.inbox.add_leads_to_dnc(["a" * 24], timeout=5, extra_headers=extra)
        await client.inbox.update("a" * 24, tags=[], timeout=Timeout(total=5), extra_headers=extra)
        await client.dnc.get_page(limit=1)  # and the next call is back to the client's own
    *per_call, plain = seen
    assert len(per_call) == 6
    for request in per_call:
        assert request.timeout.total == 5
        assert request.headers["X-Trace"] == "t-1"
        assert request.headers["X-Api-Key"] == KEY  # the auth header is never overridden
    assert plain.timeout.total == 30
    assert "X-Trace" not in plain.headers

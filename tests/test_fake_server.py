import aiohttp
import orjson
import pytest

from sendkit_async import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    PermissionDeniedError,
    RateLimitError,
    SendKit,
    ValidationError,
)
from sendkit_async.testing import DEFAULT_PLATFORM_KEY, DEFAULT_WORKSPACE_KEY, Edge, FakeSendKit


async def raw(fake, method, path, *, headers=None, body=None, key=DEFAULT_WORKSPACE_KEY):
    sent_headers = {"X-Api-Key": key, "Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    sent_headers.update(headers or {})
    data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.url + path, headers=sent_headers, data=data) as response,
    ):
        return response.status, await response.json(content_type=None), response.headers


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"X-Api-Key": ""}, 401, "Missing X-Api-Key"),
        ({"Authorization": "Bearer sk_other"}, 401, "same key"),
        ({"Authorization": ""}, 401, "Bearer"),
        ({"X-Workspace-Id": "ws_test"}, 400, "must not send X-Workspace-Id"),
        ({"Content-Type": "text/plain"}, 415, "application/json"),
    ],
)
async def test_requests_breaking_the_auth_rules_are_refused(fake_sendkit, headers, status, message):
    got, body, _ = await raw(fake_sendkit, "POST", "/v1/dnc/import", headers=headers, body={"entries": ["x"]})
    assert got == status
    assert body["code"] == status
    assert message in body["message"]
    assert set(body) == {"error", "message", "code"}


async def test_unknown_keys_are_unauthorised(fake_sendkit):
    async with SendKit(api_key="sk_unknown", base_url=fake_sendkit.url) as client:
        with pytest.raises(AuthenticationError, match="Invalid API key"):
            await client.dnc.get_page()


async def test_platform_keys_need_an_allowed_workspace(fake_sendkit):
    status, body, _ = await raw(fake_sendkit, "GET", "/v1/dnc", key=DEFAULT_PLATFORM_KEY)
    assert (status, body["message"]) == (400, "Platform API keys need an X-Workspace-Id header")
    async with SendKit(
        api_key=DEFAULT_PLATFORM_KEY, workspace_id="ws_nope", base_url=fake_sendkit.url
    ) as client:
        with pytest.raises(PermissionDeniedError):
            await client.dnc.get_page()
    async with SendKit(
        api_key=DEFAULT_PLATFORM_KEY, workspace_id="ws_other", base_url=fake_sendkit.url
    ) as client:
        await client.dnc.import_entries(["a@example.com"])
    assert fake_sendkit.dnc_emails("ws_other") == {"a@example.com"}
    assert fake_sendkit.dnc_emails("ws_test") == set()


async def test_oversize_batches_are_rejected_whole(fake_sendkit):
    entries = [{"email": f"u{i}@example.com", "type": "email"} for i in range(10_001)]
    status, body, _ = await raw(fake_sendkit, "POST", "/v1/dnc/import", body={"entries": entries})
    assert status == 400
    assert "at most 10,000" in body["message"]
    assert fake_sendkit.dnc_emails() == set()
    assert fake_sendkit.stats.largest_batch == 10_001


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({"entries": []}, "non-empty array"),
        ({"entries": [{"email": "a@example.com", "type": "phone"}]}, "entries[0].type"),
        ({"entries": [{"email": "a@example.com", "reason": "why"}]}, "entries[0].reason"),
        ({"entries": [{"email": "ok@example.com"}, {"email": "bad"}]}, "entries[1]: invalid email"),
        ({"entries": [{"email": "a@example.com", "color": "red"}]}, "unknown fields"),
    ],
)
async def test_bad_import_bodies_get_400_and_store_nothing(fake_sendkit, body, message):
    status, answer, _ = await raw(fake_sendkit, "POST", "/v1/dnc/import", body=body)
    assert status == 400
    assert message in answer["message"]
    assert fake_sendkit.dnc_emails() == set()


async def test_server_side_rejections_name_the_entry():
    async with FakeSendKit(
        reject=lambda e: "disposable domain" if e.endswith("@mailinator.com") else None
    ) as fake:
        async with fake.client() as client:
            with pytest.raises(BadRequestError, match=r"entries\[1\]: disposable domain"):
                await client.dnc.import_entries(["a@example.com", "x@mailinator.com"])
        assert fake.dnc_emails() == set()


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "page=0", "type=phone", "cursor=nope", "page=1&cursor=664a1b2c3d4e5f6a7b8c9d0e"],
)
async def test_bad_list_queries_get_400(fake_sendkit, query):
    status, _, _ = await raw(fake_sendkit, "GET", f"/v1/dnc?{query}")
    assert status == 400


async def test_unknown_routes_answer_in_the_documented_shape(fake_sendkit):
    status, body, _ = await raw(fake_sendkit, "GET", "/v1/nothing")
    assert (status, body["error"], body["code"]) == (404, "Not Found", 404)


async def test_rate_limit_headers_on_every_answer_and_429_past_the_limit():
    async with FakeSendKit(rate_limit=2, rate_window=60) as fake:
        first = await raw(fake, "GET", "/v1/dnc")
        second = await raw(fake, "GET", "/v1/dnc")
        third = await raw(fake, "GET", "/v1/dnc")
        assert [r[0] for r in (first, second, third)] == [200, 200, 429]
        assert [r[2]["X-RateLimit-Remaining"] for r in (first, second, third)] == ["1", "0", "0"]
        assert first[2]["X-RateLimit-Limit"] == "2"
        assert 0 < float(third[2]["X-RateLimit-Reset"]) <= 60
        assert 1 <= int(third[2]["Retry-After"]) <= 60
        assert fake.stats.rate_limited == 1
        async with fake.client(max_retry_wait=0.5) as client:
            with pytest.raises(RateLimitError):
                await client.dnc.get_page()


async def test_injected_faults_are_counted_and_repeatable():
    outcomes = []
    for _ in range(2):
        async with FakeSendKit(fail_rate=0.3, drop_rate=0.2, seed=7) as fake:
            async with fake.client(max_retries=0) as client:
                run = []
                for i in range(30):
                    try:
                        # A POST: aiohttp itself re-sends an idempotent GET once
                        # when a pooled keep-alive connection turns out dropped.
                        await client.dnc.import_entries([f"u{i}@example.com"])
                        run.append("ok")
                    except InternalServerError:
                        run.append("5xx")
                    except APIConnectionError:
                        run.append("drop")
            assert fake.stats.injected_errors == run.count("5xx") > 0
            assert fake.stats.dropped == run.count("drop") > 0
            outcomes.append(run)
    assert outcomes[0] == outcomes[1]


async def test_stats_count_in_flight_requests():
    """The server holds each request until the test moves its clock: four sent together are four in flight."""
    import asyncio  # noqa: PLC0415

    from sendkit_async.testing import FakeClock  # noqa: PLC0415

    server_time = FakeClock(auto_advance=False)

    async def held(count: int) -> None:
        while server_time.waiting < count:  # noqa: ASYNC110 - until the server holds them all
            await asyncio.sleep(0.001)

    async with (
        FakeSendKit(latency=0.05, rate_limit=1000, clock=server_time) as fake,
        fake.client() as client,
    ):
        first = asyncio.ensure_future(client.dnc.get_page())  # teaches the budget the rate
        await held(1)
        server_time.advance(0.05)
        await first
        fake.stats.reset()
        together = asyncio.gather(*(client.dnc.get_page() for _ in range(4)))
        await held(4)
        assert fake.stats.in_flight == 4
        server_time.advance(0.05)
        await together
        assert fake.stats.max_in_flight == 4
        assert fake.stats.in_flight == 0
        fake.stats.reset()
        assert fake.stats.requests == 0


async def test_the_servers_limiter_and_latency_run_on_its_clock():
    """Windows in the server's virtual time: a test moves them without waiting."""
    from sendkit_async import RateLimitError, RetryPolicy  # noqa: PLC0415
    from sendkit_async.testing import FakeClock  # noqa: PLC0415

    server_time = FakeClock()
    from sendkit_async import dnc  # noqa: PLC0415

    async with (
        FakeSendKit(rate_limit=2, limiter="fixed", clock=server_time) as fake,
        fake.client(clock=FakeClock()) as client,
    ):
        once = client._session.with_options(retry=RetryPolicy(max_retries=0, max_rate_limit_retries=0))
        await dnc.get_page(once)
        await dnc.get_page(once)
        with pytest.raises(RateLimitError):
            await dnc.get_page(once)  # the third in the same second of the server's time
        server_time.advance(1.0)
        await dnc.get_page(once)  # the next window, without a real second passing
    assert fake.stats.rate_limited == 1


async def test_the_edge_is_its_own_part_composed_in_front_of_the_api():
    edge = Edge(rate_limit=2, limiter="anchored", rate_window=60)
    async with FakeSendKit(edge) as fake:
        assert fake.edge is edge
        statuses = [(await raw(fake, "GET", "/v1/dnc"))[0] for _ in range(3)]
        edge.rate_limit = None  # knobs are attributes: no limit from the next request on
        after, _, headers = await raw(fake, "GET", "/v1/dnc")
    assert statuses == [200, 200, 429]
    assert after == 200
    assert headers["X-RateLimit-Limit"] == "100000"  # still fields, as the real API's answers carry
    assert fake.stats.rate_limited == 1
    assert fake.stats is edge.stats  # one set of counters for the server and its edge


def test_an_edge_and_its_knobs_at_once_or_an_unknown_knob_are_refused():
    with pytest.raises(ValidationError, match="Edge"):
        FakeSendKit(Edge(), latency=0.1)
    with pytest.raises(TypeError, match="latencyy"):
        FakeSendKit(latencyy=0.1)
    with pytest.raises(ValidationError, match="refusal_status"):
        Edge(refusal_status=418)

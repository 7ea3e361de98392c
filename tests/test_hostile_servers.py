"""Every answer is bounded and typed: bombs, floods, trickles and malformed HTTP from a raw-socket server."""

from __future__ import annotations

import tracemalloc

import pytest

from sendkit_async import APIConnectionError, APITimeoutError, SendKit, SendKitError, Timeout

from .hostile import ANSWERS, HostileServer

KEY = "sk_test_hostile_key"
MIB = 1024 * 1024


@pytest.mark.parametrize("name", ANSWERS)
async def test_a_hostile_answer_is_a_typed_error_with_bounded_memory(name) -> None:
    async with (
        HostileServer(ANSWERS[name]).running() as server,
        SendKit(
            api_key=KEY, base_url=server.url, timeout=Timeout(total=0.6, connect=0.5), max_retries=1
        ) as client,
    ):
        tracemalloc.start()
        try:
            with pytest.raises(SendKitError) as caught:
                await client.dnc.get_page(limit=1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert isinstance(caught.value, (APIConnectionError, APITimeoutError)), repr(caught.value)
    assert server.requests == 2  # retried like a dropped connection, within max_retries
    assert peak < 300 * MIB, f"{peak / MIB:.0f} MiB"
    assert KEY not in str(caught.value)


async def test_the_bound_on_an_answer_is_the_clients_to_set() -> None:
    body = b'{"success": true, "data": [], "pagination": {"total": 0}, "pad": "' + b" " * 5000 + b'"}'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )

    async def fixed(writer):
        writer.write(answer)
        await writer.drain()

    async with HostileServer(fixed).running() as server:
        async with SendKit(api_key=KEY, base_url=server.url, max_retries=0) as roomy:
            page = await roomy.dnc.get_page()
            assert page.items == ()
        async with SendKit(api_key=KEY, base_url=server.url, max_retries=0, max_answer_bytes=4096) as tight:
            with pytest.raises(APIConnectionError, match="4,096"):
                await tight.dnc.get_page()


async def test_one_malformed_answer_does_not_stop_a_bulk_job() -> None:
    """The first import meets a bad status line; the retry lands, and so does every batch."""
    calls = []
    ok = b'{"success": true, "data": {"imported": 100, "skipped": 0}}'

    async def sometimes_broken(writer):
        calls.append(1)
        if len(calls) == 2:  # the probe is the first request; the first batch meets the fault
            writer.write(b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}")
        else:
            body = ok if len(calls) > 1 else b'{"success": true, "data": [], "pagination": {"total": 0}}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
        await writer.drain()

    async with (
        HostileServer(sometimes_broken).running() as server,
        SendKit(api_key=KEY, base_url=server.url, timeout=2) as client,
    ):
        report = await client.dnc.import_bulk([f"u{i}@example.com" for i in range(500)], batch_size=100)
    assert report.imported == 500
    assert report.failed == ()
    assert report.retries == 1


async def test_a_trickling_server_costs_a_call_at_most_its_call_limit_whatever_the_retries() -> None:
    async with (
        HostileServer(ANSWERS["1 byte a second"]).running() as server,
        SendKit(
            api_key=KEY, base_url=server.url, timeout=Timeout(total=0.5, call=0.8), max_retries=5
        ) as client,
    ):
        with pytest.raises(APITimeoutError):
            await client.dnc.get_page(limit=1)
    # 0.5 s, then (if the backoff leaves any) what is left of 0.8 s; five retries allowed, no time for more.
    assert server.requests in (1, 2)

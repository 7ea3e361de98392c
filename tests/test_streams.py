"""Every stream is safe to leave, at any point, in every way people leave a loop, on asyncio and on uvloop.

Each case runs on a loop of its own (``asyncio.run`` or ``uvloop.run``) with
the loop's exception handler turned into a failure, so "Task exception was
never retrieved", "Task was destroyed but it is pending" and an exception
in a callback all fail the test. The list has many pages, so what is left
behind is the concurrent walk.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sendkit_async import SendKit, UnexpectedResponseError
from sendkit_async.testing import FakeSendKit, MockTransport, json_response

from .conftest import KEY

LOOPS: dict[str, Callable[[Awaitable[None]], None]] = {"asyncio": asyncio.run}
if sys.platform != "win32":
    import uvloop

    LOOPS["uvloop"] = uvloop.run

ENTRIES = 3_000  # 150 pages of 20: five segments of 32 pages walk at once
STREAMS: dict[str, Callable[[SendKit], Any]] = {
    "list": lambda client: client.dnc.list(limit=20, concurrency=6),
    "pages": lambda client: client.dnc.pages(limit=20, concurrency=6),
    "pages in page mode": lambda client: client.dnc.pages(limit=20, mode="page", concurrency=6),
    "iter_import": lambda client: client.dnc.iter_import(
        [f"new{i}@example.com" for i in range(5_000)], batch_size=50, concurrency=6
    ),
}


class LeftError(Exception):
    """Raised in the loop body."""


async def _slowly(stream: Any) -> None:
    async for _ in stream:
        await asyncio.sleep(0.01)


async def _leave_by_break(stream: Any) -> None:
    async for _ in stream:
        break


async def _raise_in_the_body(stream: Any) -> None:
    async for _ in stream:
        raise LeftError


async def _leave_by_exception(stream: Any) -> None:
    with pytest.raises(LeftError):
        await _raise_in_the_body(stream)


async def _leave_by_cancelling_the_consumer(stream: Any) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in stream:
            started.set()
            await asyncio.sleep(0.01)

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _leave_by_timeout(stream: Any) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(_slowly(stream), timeout=0.05)


async def _leave_by_dropping_it(stream_factory: Callable[[], Any]) -> None:
    async def read_one() -> None:
        stream = stream_factory()
        await stream.__anext__()  # then it goes out of scope, never closed

    await read_one()
    gc.collect()


WAYS = {
    "break": _leave_by_break,
    "exception in the body": _leave_by_exception,
    "consumer cancelled": _leave_by_cancelling_the_consumer,
    "timeout": _leave_by_timeout,
    "dropped and collected": None,  # takes the factory: the stream must not outlive the helper
}


def _run_watched(loop_name: str, main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on a fresh loop whose exception handler records everything; fail on any record."""
    problems: list[dict[str, Any]] = []

    async def watched() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: problems.append(context))
        await main()

    LOOPS[loop_name](watched())
    assert problems == []


def _sdk_tasks() -> list[asyncio.Task[Any]]:
    """Tasks of the client's still running (the fake server's connection handlers are not ours)."""
    return [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task() and "Background.run" in repr(task.get_coro())
    ]


async def _settle(fake: FakeSendKit, latency: float) -> None:
    for _ in range(100):
        if fake.stats.in_flight == 0 and not _sdk_tasks():
            return
        await asyncio.sleep(latency / 4)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("kind", STREAMS)
def test_a_stream_left_any_way_leaves_the_caller_and_the_client_whole(loop_name, way, kind) -> None:
    latency = 0.01

    async def main() -> None:
        async with FakeSendKit(latency=latency) as fake:
            fake.add_dnc(f"u{i}@example.com" for i in range(ENTRIES))
            async with fake.client() as client:
                factory = lambda: STREAMS[kind](client)  # noqa: E731 - one line, read once
                leave = WAYS[way]
                if leave is None:
                    await _leave_by_dropping_it(factory)
                else:
                    await leave(factory())
                # Within one round trip nothing of the stream is left running: no task, no request.
                await _settle(fake, latency)
                assert _sdk_tasks() == []
                assert fake.stats.in_flight == 0
                sent = fake.stats.requests
                await asyncio.sleep(3 * latency)
                assert fake.stats.requests == sent
                # The caller's task and the client are whole: the next calls work.
                page = await client.dnc.get_page(limit=5)
                assert len(page.items) == 5
                result = await client.dnc.import_entries(["after@example.com"])
                assert result.imported == 1
                async for entry in client.dnc.list(limit=100, type="email"):
                    assert entry.email
                    break

    _run_watched(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_server_repeating_its_cursor_ends_the_stream_with_a_typed_error_and_the_client_stays_usable(
    loop_name,
) -> None:
    """As Prism answers every list page with the spec's example cursor."""
    entry = {
        "_id": "664a1b2c3d4e5f6a7b8c9d0e",
        "email": "unsubscribed@example.com",
        "entryType": "email",
        "workspaceId": "ws_123",
        "reason": "manual",
    }
    page = {
        "success": True,
        "data": [entry],
        "pagination": {"total": 45, "limit": 20, "nextCursor": "example_string", "hasMore": True},
    }

    def prism(request):
        if request.url.path == "/v1/dnc":
            return json_response(200, page)
        return json_response(200, {"success": True, "data": {"modified": 3}})

    async def main() -> None:
        async with SendKit(api_key=KEY, transport=MockTransport(prism)) as client:
            with pytest.raises(UnexpectedResponseError, match="cursor"):
                async for _ in client.dnc.list(start="664a1b2c3d4e5f6a7b8c9d0e"):
                    pass
            with pytest.raises(UnexpectedResponseError, match="cursor"):
                async for _ in client.dnc.list():
                    pass
            marked = await client.inbox.mark_read(["664a1b2c3d4e5f6a7b8c9d0e"])
            assert marked.modified == 3

    _run_watched(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_closing_the_client_stops_its_streams_and_a_reader_is_told_so(loop_name) -> None:
    from sendkit_async import ClientClosedError  # noqa: PLC0415

    async def main() -> None:
        async with FakeSendKit(latency=0.01) as fake:
            fake.add_dnc(f"u{i}@example.com" for i in range(ENTRIES))
            client = fake.client()
            stream = client.dnc.list(limit=20)
            await stream.__anext__()
            await client.aclose()
            with pytest.raises(ClientClosedError):
                async for _ in stream:
                    pass
            assert _sdk_tasks() == []

    _run_watched(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_aclose_and_async_with_stop_a_stream_and_wait_for_its_requests(loop_name) -> None:
    async def main() -> None:
        async with FakeSendKit(latency=0.02) as fake:
            fake.add_dnc(f"u{i}@example.com" for i in range(ENTRIES))
            async with fake.client() as client:
                stream = client.dnc.pages(limit=20, concurrency=8)
                async with stream:
                    await stream.__anext__()
                assert _sdk_tasks() == []  # aclose waited for the walk to end
                async for _ in stream:
                    pytest.fail("a closed stream yields nothing more")
                await stream.aclose()  # idempotent

    _run_watched(loop_name, main)


def test_a_stream_never_iterated_sends_nothing_and_starts_no_task() -> None:
    async def main() -> None:
        async with FakeSendKit() as fake, fake.client() as client:
            client.dnc.list()
            client.dnc.iter_import(["a@example.com"])
            gc.collect()
            await asyncio.sleep(0.01)
            assert fake.stats.requests == 0
            assert _sdk_tasks() == []

    _run_watched("asyncio", main)


def test_the_readme_quick_start_loop_runs_as_written_with_a_break() -> None:
    """The quick start's ``async for`` over ``client.dnc.list()``, with a ``break``, then more calls."""

    async def main() -> None:
        async with FakeSendKit(latency=0.005) as fake:
            fake.add_dnc(f"lead{i}@example.com" for i in range(ENTRIES))
            async with SendKit(api_key=fake.api_key, base_url=fake.url) as client:
                result = await client.dnc.import_entries(["bounce@example.com", "badcompany.com"])
                assert result.imported == 2
                async for entry in client.dnc.list(type="email"):
                    assert entry.created_at is not None
                    break
                report = await client.dnc.import_bulk([f"x{i}@example.com" for i in range(500)])
                assert report.imported == 500

    _run_watched("asyncio", main)

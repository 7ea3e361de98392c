"""VirtualTimeLoop: asyncio's, anyio's and aiohttp's own waits run in virtual time, exactly and repeatably.

What is right here is asyncio's documented behaviour (a sleep wakes at its
deadline, timers in deadline order, a timeout raises at its deadline), read
off the loop's own ``time()``: no figure of the SDK's decides it.
"""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import anyio
import pytest
from aiohttp import web

from sendkit_async import SendKit
from sendkit_async.testing import FakeSendKit, VirtualTimeLoop, run_in_virtual_time, virtual_clock

from .conftest import KEY
from .flowsim import VirtualServer

pytestmark = pytest.mark.virtual_time


async def test_an_hour_of_sleep_is_an_hour_of_loop_time():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    started = loop.time()
    await asyncio.sleep(3600)
    await anyio.sleep(0.25)
    assert loop.time() - started == 3600.25


async def test_sleepers_wake_in_deadline_order_at_their_deadlines():
    loop = asyncio.get_running_loop()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        woke.append((name, loop.time()))

    async with anyio.create_task_group() as group:
        for name, seconds in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)]:
            group.start_soon(sleeper, name, seconds)
    assert woke == [("a", 1.0), ("a2", 1.0), ("b", 2.0), ("c", 3.0)]


async def test_timeouts_fire_at_their_deadline_and_cancellation_interrupts_a_wait():
    loop = asyncio.get_running_loop()
    with pytest.raises(asyncio.TimeoutError):  # the builtin TimeoutError from 3.11 on
        await asyncio.wait_for(asyncio.sleep(10), timeout=2)
    assert loop.time() == 2
    with anyio.move_on_after(5) as scope:
        await anyio.sleep(60)
    assert scope.cancelled_caught
    assert loop.time() == 7
    task = asyncio.ensure_future(asyncio.sleep(100))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() == 8


async def test_time_stands_still_while_a_thread_of_the_loops_executor_works():
    loop = asyncio.get_running_loop()
    started = loop.time()
    # A real 50 ms in a thread, raced by a virtual 10 s timer: the thread wins, no time passes.
    slow = loop.run_in_executor(None, time.sleep, 0.05)
    timer = asyncio.ensure_future(asyncio.sleep(10))
    await slow
    assert loop.time() == started
    assert not timer.done()
    await timer
    assert loop.time() == started + 10


async def test_time_stands_still_while_out_of_process_work_is_marked():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    answered = asyncio.Event()
    threading.Timer(0.05, lambda: loop.call_soon_threadsafe(answered.set)).start()
    with loop.working():
        async with anyio.create_task_group() as group:
            group.start_soon(asyncio.sleep, 10)
            await answered.wait()
            assert loop.time() == 0.0  # the 10 s sleeper did not jump ahead of the real answer
            group.cancel_scope.cancel()


async def test_an_aiohttp_round_trip_over_a_real_socket_takes_the_servers_virtual_latency():
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as response:
                assert await response.json() == {"ok": True}
            assert loop.time() - started == 1.5
            with pytest.raises(asyncio.TimeoutError):
                await session.get(f"http://127.0.0.1:{port}/", timeout=aiohttp.ClientTimeout(total=1))
            assert loop.time() - started == 2.5
    finally:
        await runner.cleanup()


async def test_the_loop_clock_is_the_sdks_clock_in_virtual_time():
    clock = virtual_clock()
    wall, started = clock.wall(), clock.monotonic()
    await clock.sleep(90)
    assert (clock.monotonic() - started, clock.wall() - wall) == (90, 90)


def test_virtual_clock_outside_a_virtual_loop_is_a_clear_error():
    async def main() -> None:
        virtual_clock()

    with pytest.raises(RuntimeError, match="needs a VirtualTimeLoop"):
        asyncio.run(main())


def test_run_in_virtual_time_is_repeatable_to_the_last_digit_and_leaves_nothing_behind():
    leftovers: list[asyncio.Future[None]] = []

    async def job(clock):
        # In process, no sockets: a server of 20 requests/s answering in 0.3 s, and a paced import.
        server = VirtualServer(clock, service=0.3, rate=20, list_service=0.05)
        async with SendKit(api_key=KEY, clock=clock, transport=server.transport()) as client:
            started = clock.monotonic()
            report = await client.dnc.import_bulk([f"u{i}@example.com" for i in range(2_000)], batch_size=10)
            leftovers.append(asyncio.ensure_future(asyncio.sleep(3600)))  # cancelled at the end
            return report.imported, server.rate_limited, clock.monotonic() - started, tuple(server.arrivals)

    runs = {run_in_virtual_time(job) for _ in range(3)}
    assert len(runs) == 1
    [(imported, _, elapsed, _)] = runs
    assert imported == 2_000
    assert elapsed >= 200 / 20
    assert all(task.cancelled() for task in leftovers)


def test_a_job_against_the_fake_over_real_sockets_runs_in_virtual_time():
    async def job(clock):
        async with (
            FakeSendKit(rate_limit=8, rate_window=0.25, latency=0.01, seed=1, clock=clock) as fake,
            fake.client(clock=clock) as client,
        ):
            started = clock.monotonic()
            report = await client.dnc.import_bulk(
                [f"u{i}@example.com" for i in range(3_000)], batch_size=100, concurrency=6
            )
            return report.imported, fake.stats, clock.monotonic() - started

    imported, stats, elapsed = run_in_virtual_time(job)
    assert (imported, stats.requests - stats.rate_limited) == (3_000, 30)
    assert elapsed >= (30 - 8) / 32  # 8 per window, the first window's at once

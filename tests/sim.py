"""A virtual-time simulation: workers pace through a budget against an in-process limiter.

No sockets: the server is a limiter shape from ``sendkit_async.testing``, its
headers are parsed by the same functions as the session's, and the whole run
takes milliseconds of real time on a :class:`FakeClock`.
"""

from __future__ import annotations

import itertools

import anyio
import attrs
from multidict import CIMultiDict

from sendkit_async._budget import Lane, LocalBudget, Observation
from sendkit_async._retry import parse_rate_limit, parse_retry_after
from sendkit_async.testing import FakeClock
from sendkit_async.testing._limits import HeaderStyle, Limiter, rate_headers


@attrs.define
class Run:
    requests: int = 0
    rate_limited: int = 0
    done: int = 0
    sends: list[float] = attrs.Factory(list)
    finished: dict[str, list[float]] = attrs.Factory(dict)
    elapsed: float = 0.0


def answer_headers(
    limiter: Limiter, style: HeaderStyle, now: float, retry_after: float | None
) -> CIMultiDict[str]:
    headers = CIMultiDict(rate_headers(limiter.state(now), style))
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, -int(-retry_after // 1)))
    return headers


async def exchange(budget, clock, limiter, style, latency, lane, run) -> bool:
    permit = await budget.acquire(lane)
    sent, sent_wall = clock.monotonic(), clock.wall()
    run.sends.append(sent)
    run.requests += 1
    verdict = limiter.hit(sent)
    # Like a real edge, the limiter stamps its fields when it decides.
    headers = answer_headers(limiter, style, sent, None if verdict.allowed else verdict.retry_after)
    await clock.sleep(latency)
    now = clock.monotonic()
    status = 200 if verdict.allowed else 429
    rate = parse_rate_limit(headers, observed_at=now, now=clock.wall())
    retry_after = parse_retry_after(headers, clock.wall())
    observation = Observation.of(
        status, sent_at=sent_wall, received_at=clock.wall(), rate=rate, retry_after=retry_after
    )
    await budget.observe(permit, observation)
    run.rate_limited += not verdict.allowed
    return verdict.allowed


async def simulate(
    limiter: Limiter,
    *,
    requests: int,
    workers: int = 8,
    latency: float = 0.1,
    style: HeaderStyle = "x",
    budget: LocalBudget | None = None,
    clock: FakeClock | None = None,
    interactive_every: float | None = None,
) -> Run:
    """Send ``requests`` bulk requests from ``workers`` workers (each retried until admitted)."""
    clock = clock or FakeClock(auto_advance=False)
    budget = budget or LocalBudget(clock=clock)
    run = Run()
    jobs = itertools.count()
    start = clock.monotonic()

    async def worker() -> None:
        while next(jobs) < requests:
            while not await exchange(budget, clock, limiter, style, latency, Lane.BULK, run):
                pass
            run.done += 1

    async def interactive() -> None:
        assert interactive_every is not None
        waits = run.finished.setdefault("interactive", [])
        while run.done < requests - workers:
            await clock.sleep(interactive_every)
            asked = clock.monotonic()
            while not await exchange(budget, clock, limiter, style, latency, Lane.INTERACTIVE, run):
                pass
            waits.append(clock.monotonic() - asked - latency)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)
            if interactive_every is not None:
                group.start_soon(interactive)

    await clock.drive(main())
    run.elapsed = clock.monotonic() - start
    return run

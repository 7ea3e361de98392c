"""A virtual-time simulation: workers pace through a budget against an in-process limiter.

No sockets to the server: it is a limiter shape from ``sendkit_async.testing``
spelled by a :class:`Spelling`, its headers are parsed by the same functions as
the session's, and the whole run takes milliseconds of real time. Callers run
on a :class:`~sendkit_async.testing.VirtualTimeLoop` (``@pytest.mark.virtual_time``):
time jumps whenever no task can run (the Redis budget's calls are real, and
time stands still while they are out).
"""

from __future__ import annotations

import asyncio
import itertools

import anyio
import attrs
from multidict import CIMultiDict

from sendkit_async._budget import Lane, LocalBudget, Observation, RateBudget
from sendkit_async._clock import Clock
from sendkit_async._fields import parse_rate_limit, parse_retry_after
from sendkit_async._throttle import retry_after_in_body
from sendkit_async.testing import VirtualTimeLoop, virtual_clock
from sendkit_async.testing._limits import Limiter, Spelling, states_of


@attrs.define
class Run:
    requests: int = 0
    rate_limited: int = 0
    done: int = 0
    sends: list[float] = attrs.Factory(list)
    finished: dict[str, list[float]] = attrs.Factory(dict)
    elapsed: float = 0.0


@attrs.define
class Server:
    """The limiter as a server would run it: on its own (possibly offset) clock, stamping on arrival."""

    limiter: Limiter
    spelling: Spelling
    clock: Clock
    latency: float
    refusal_latency: float = 0.001

    def now(self) -> float:
        return self.clock.wall() + self.spelling.clock_offset

    def decide(self) -> tuple[int, CIMultiDict[str], dict[str, object]]:
        """The status, headers and body fields of the answer to a request arriving now."""
        now = self.now()
        verdict = self.limiter.hit(now)
        headers = CIMultiDict(
            self.spelling.headers(self.limiter.state(now), now, states_of(self.limiter, now))
        )
        if verdict.allowed:
            return 200, headers, {}
        extra, fields = self.spelling.refusal(verdict.retry_after, now, verdict.window or 1.0)
        headers.update(extra)
        return self.spelling.status, headers, fields


async def exchange(budget: RateBudget, server: Server, lane: Lane, run: Run) -> bool:
    clock = server.clock
    permit = await budget.acquire(lane)
    sent_wall = clock.wall()
    run.sends.append(clock.monotonic())
    run.requests += 1
    status, headers, fields = server.decide()
    await clock.sleep(server.latency if status == 200 else server.refusal_latency)
    rate = parse_rate_limit(headers, observed_at=clock.monotonic(), now=clock.wall())
    retry_after = parse_retry_after(headers, clock.wall())
    if retry_after is None:
        retry_after = retry_after_in_body(fields)
    # The session's call on a 503 or 403 (see _throttle): these limiters all say so, or answer at once.
    observation = Observation.of(
        status,
        sent_at=sent_wall,
        received_at=clock.wall(),
        rate=rate,
        retry_after=retry_after,
        refused=status != 200,
    )
    await budget.observe(permit, observation)
    run.rate_limited += status != 200
    return status == 200


def _set_up(limiter, latency, spelling, budget, clock):
    """The clock, the budget (a local one by default), the server and an empty record of a run."""
    clock = clock or virtual_clock()
    budget = budget or LocalBudget(clock=clock)
    return clock, budget, Server(limiter, spelling or Spelling(), clock, latency), Run()


async def simulate(
    limiter: Limiter,
    *,
    requests: int,
    workers: int = 8,
    latency: float = 0.1,
    spelling: Spelling | None = None,
    budget: RateBudget | None = None,
    clock: Clock | None = None,
    interactive_every: float | None = None,
    interactive_budget: RateBudget | None = None,
) -> Run:
    """Send ``requests`` bulk requests from ``workers`` workers (each retried until admitted).

    With ``interactive_every``, one more caller makes an interactive call that often (through
    ``interactive_budget``: another process's budget on the same key; by default the workers').
    """
    clock, budget, server, run = _set_up(limiter, latency, spelling, budget, clock)
    caller_budget = interactive_budget or budget
    jobs = itertools.count()
    start = clock.monotonic()

    async def worker() -> None:
        while next(jobs) < requests:
            while not await exchange(budget, server, Lane.BULK, run):
                pass
            run.done += 1

    async def interactive() -> None:
        assert interactive_every is not None
        waits = run.finished.setdefault("interactive", [])
        while run.done < requests - workers:
            await clock.sleep(interactive_every)
            asked = clock.monotonic()
            while not await exchange(caller_budget, server, Lane.INTERACTIVE, run):
                pass
            waits.append(clock.monotonic() - asked - latency)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)
            if interactive_every is not None:
                group.start_soon(interactive)

    await main()
    run.elapsed = clock.monotonic() - start
    return run


async def crowd(
    limiter: Limiter,
    *,
    calls: int,
    latency: float,
    spelling: Spelling | None = None,
    budget: RateBudget | None = None,
    clock: Clock | None = None,
) -> Run:
    """``calls`` single interactive calls started at once, each retried until admitted."""
    clock, budget, server, run = _set_up(limiter, latency, spelling, budget, clock)
    start = clock.monotonic()

    async def one() -> None:
        while not await exchange(budget, server, Lane.INTERACTIVE, run):
            pass
        run.done += 1

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(calls):
                group.start_soon(one)

    await main()
    run.elapsed = clock.monotonic() - start
    return run


def redis_budget(client, clock: Clock, *, prefix: str, key: str = "sim", **kwargs):
    """A :class:`RedisBudget` on a real server, on the running VirtualTimeLoop's ``clock``."""
    from sendkit_async._budget._redis import RedisBudget  # noqa: PLC0415 - the optional extra
    from sendkit_async._budget._shared import SharedState  # noqa: PLC0415 - the optional extra

    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)

    class VirtualSharedState(SharedState):
        async def call(self, operation, *args):
            with loop.working():
                return await super().call(operation, *args)

    class VirtualRedisBudget(RedisBudget):
        __slots__ = ()
        _Shared = VirtualSharedState

    budget = VirtualRedisBudget(
        client, clock=clock, prefix=prefix, script_time=clock.wall, timeout=5, **kwargs
    )
    budget.bind(key)
    return budget

"""What issue #9's probes found, each pinned down from the outside."""

import asyncio
import random

import anyio
import pytest

from sendkit_async import SendKit
from sendkit_async.testing import FakeClock, FakeSendKit

from .conftest import API, KEY, revoke_key_after
from .wire import Wire

IDS = [f"{i:024x}" for i in range(1, 1501)]


async def test_after_a_huge_retry_after_a_bulk_job_and_a_chunked_mark_read_both_finish_promptly():
    clock = FakeClock()
    wire = Wire()
    wire.post(f"{API}/v1/dnc/import", status=429, headers={"Retry-After": "100000"}, payload={"error": "x"})
    wire.post(
        f"{API}/v1/dnc/import", payload={"success": True, "data": {"imported": 10, "skipped": 0}}, repeat=True
    )
    wire.post(f"{API}/v1/inbox/mark-read", payload={"success": True, "data": {"modified": 1}}, repeat=True)
    async with SendKit(api_key=KEY, clock=clock, transport=wire) as client:
        report = await client.dnc.import_bulk([f"u{i}@example.com" for i in range(30)], batch_size=10)
        marked = await client.inbox.mark_read(IDS)
    assert report.balanced
    assert report.failed == ()  # 28 hours is not believed: the batch is re-probed, and lands
    assert report.imported == 30
    assert marked.modified == 2  # two chunks of at most 1,000 ids
    assert clock.monotonic() < 10  # virtual seconds, not 28 hours


def entries(count):
    return [f"user{i}@example.com" for i in range(count)]


class Where:
    """No checkpoint, a file, or a job in a real Redis; and whether anything still holds a job."""

    def __init__(self, kind, tmp_path, request):
        self.kind, self.tmp_path = kind, tmp_path
        self.redis = None
        if kind == "redis":
            import redis  # noqa: PLC0415

            self.url = request.getfixturevalue("redis_server").url
            self.redis = redis.Redis.from_url(self.url)

    def args(self, attempt):
        if self.kind == "file":
            return {"checkpoint": self.tmp_path / f"job{attempt}.ckpt"}
        if self.kind == "redis":
            return {"checkpoint": self.url, "job": f"job{attempt}"}
        return {}

    def held(self):
        if self.kind == "file":
            return sorted(path.name for path in self.tmp_path.glob("*.lock"))
        if self.kind == "redis":
            return sorted(self.redis.scan_iter("*:lease"))
        return []


@pytest.fixture(params=["none", "file", "redis"])
def where(request, tmp_path):
    spot = Where(request.param, tmp_path, request)
    yield spot
    if spot.redis is not None:
        spot.redis.close()


async def test_cancelling_an_import_at_random_points_is_always_plain_cancellation(where):
    rng = random.Random(9)
    # 30 batches, 4 at a time, 0.1 s each: the job outlasts the longest wait before the cancel.
    async with FakeSendKit(latency=0.1) as fake, fake.client() as client:
        for attempt in range(12):
            job = asyncio.create_task(
                client.dnc.import_bulk(entries(3000), batch_size=100, concurrency=4, **where.args(attempt))
            )
            await asyncio.sleep(rng.uniform(0.0, 0.25))
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job
            assert where.held() == []  # a cancelled job lets go of its lease, wherever it stopped


async def test_a_cancel_scope_around_an_import_stops_it_quietly_at_any_point(where):
    rng = random.Random(10)
    async with FakeSendKit(latency=0.02) as fake, fake.client() as client:
        for attempt in range(12):
            with anyio.move_on_after(rng.uniform(0.0, 0.25)) as scope:
                await client.dnc.import_bulk(
                    entries(3000), batch_size=100, concurrency=4, **where.args(attempt)
                )
            assert scope.cancelled_caught or fake.dnc_emails() >= set(entries(3000))
            assert where.held() == []


ID = "664a1b2c3d4e5f6a7b8c9d0e"
BAD_CALLS = {
    "select_all as a string": lambda c: c.inbox.add_leads_to_dnc(select_all="false"),
    "select_all as a number": lambda c: c.inbox.mark_read(select_all=1),
    "ids that are not a list": lambda c: c.inbox.mark_read(5),
    "filters with a non-string key": lambda c: c.inbox.mark_read(select_all=True, filters={1: "x"}),
    "filters with NaN": lambda c: c.inbox.mark_read(select_all=True, filters={"campaignId": float("nan")}),
    "filters with an object": lambda c: c.inbox.mark_read(select_all=True, filters={"campaignId": object()}),
    "tags as a mapping": lambda c: c.inbox.update(ID, tags={"a": 1}),
    "tags as a number": lambda c: c.inbox.update(ID, tags=5),
    "a tag with a newline": lambda c: c.inbox.update(ID, tags=["vip\n"]),
    "a megabyte ai_tag": lambda c: c.inbox.update(ID, ai_tag="x" * 1_000_000),
    "an ai_tag with a control character": lambda c: c.inbox.update(ID, ai_tag="hot\x00lead"),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
async def test_bad_input_is_a_typed_error_and_nothing_is_sent(wire, client, call):
    from sendkit_async import SendKitError, ValidationError  # noqa: PLC0415

    with pytest.raises(ValidationError) as caught:
        await call(client)
    assert isinstance(caught.value, SendKitError)
    assert wire.requests == []


async def test_after_a_fatal_error_the_report_says_where_reading_stopped():
    from sendkit_async.bulk import ImportAbortedError  # noqa: PLC0415

    async with FakeSendKit(latency=0.01) as fake, fake.client() as client:
        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(
                (f"user{i}@example.com" for i in range(80_000)),
                batch_size=5_000,
                concurrency=2,
                on_progress=revoke_key_after(fake, 2),
            )
    report = caught.value.report
    assert report.stopped_at is not None
    assert report.stopped_at == report.read < 80_000  # most of the input was never read
    assert all(f.position < report.stopped_at for f in report.failed)
    assert report.balanced

import asyncio
import contextlib
import json

import anyio
import pytest

from sendkit_async import DncEntry
from sendkit_async.bulk import CheckpointMismatchError, FailureKind, ImportAbortedError
from sendkit_async.testing import FakeClock, FakeSendKit, virtual_clock

from .conftest import revoke_key_after


def client_tasks():
    """Tasks still alive besides this test's own and the fake server's connection handlers."""
    return [
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task() and "RequestHandler" not in t.get_coro().__qualname__
    ]


def distinct_valid(count, *, bad_every=0, repeat_every=0):
    """An input with invalid items and repeats sprinkled in."""
    for i in range(count):
        yield f"user{i}@example.com"
        if bad_every and i % bad_every == 0:
            yield f"broken {i}"
        if repeat_every and i % repeat_every == 0:
            yield f"USER{i}@Example.com"


async def test_250k_entries_with_faults_all_land_and_add_up():
    async with FakeSendKit(fail_rate=0.05, drop_rate=0.02, seed=3) as fake:
        async with fake.client(clock=FakeClock()) as client:
            report = await client.dnc.import_bulk(distinct_valid(250_000, bad_every=5_000, repeat_every=997))
        assert fake.dnc_emails() == {f"user{i}@example.com" for i in range(250_000)}
        assert report.balanced
        assert report.imported == 250_000
        assert len(report.rejected) == 50
        assert report.duplicates == 251
        assert report.failed == ()
        assert report.retries > 0
        assert fake.stats.injected_errors + fake.stats.dropped > 0
        assert fake.stats.largest_batch <= 10_000
        assert fake.stats.max_in_flight <= 4


@pytest.mark.virtual_time
async def test_a_paced_job_under_a_fixed_window_gets_few_429s():
    clock = virtual_clock()
    async with FakeSendKit(rate_limit=8, rate_window=0.25, seed=1, clock=clock) as fake:
        async with fake.client(clock=clock) as client:
            started = clock.monotonic()
            report = await client.dnc.import_bulk(distinct_valid(6_000), batch_size=200, concurrency=6)
            elapsed = clock.monotonic() - started
        assert report.imported == 6_000
        assert report.batches == 30
        # 30 batches at 8 per 0.25 s window: at best the last goes at the start of the fourth
        # window after the first, 0.75 s in. Unpaced, the same job meets 20 refusals or more. (Its
        # sends overtake each other on the way: the server's count, not our order, says what is
        # left; tests/test_budget.py pins that rule.)
        assert fake.stats.rate_limited == 0
        assert elapsed <= 1.05 * 0.75
        assert report.rate_limited == fake.stats.rate_limited


async def test_one_bad_entry_among_10000_fails_alone_with_the_servers_message():
    rule = lambda email: "disposable domain" if email.endswith("@mailinator.com") else None  # noqa: E731
    entries = [f"user{i}@example.com" for i in range(9_999)]
    entries.insert(4_321, "victim@mailinator.com")
    async with FakeSendKit(reject=rule) as fake, fake.client() as client:
        report = await client.dnc.import_bulk(entries)
        assert report.imported == 9_999
        [failed] = report.failed
        assert (failed.position, failed.email, failed.kind) == (
            4_321,
            "victim@mailinator.com",
            FailureKind.REJECTED_BY_SERVER,
        )
        assert failed.reason == "entries[0]: disposable domain"
        assert report.balanced
        assert len(fake.dnc_emails()) == 9_999


async def test_cancel_mid_job_then_resume_from_the_checkpoint(tmp_path):
    checkpoint = tmp_path / "job.ckpt"
    entries = list(distinct_valid(20_000, bad_every=1_000, repeat_every=500))
    async with FakeSendKit(latency=0.01) as fake:
        async with fake.client() as client:
            with anyio.CancelScope() as scope:

                def stop_after_three(progress):
                    if progress.batches >= 3:
                        scope.cancel()

                await client.dnc.import_bulk(
                    entries, batch_size=1_000, checkpoint=checkpoint, on_progress=stop_after_three
                )
            assert scope.cancelled_caught
            first_run = len(fake.dnc_emails())
            assert 3_000 <= first_run < 20_000
            received = fake.stats.entries_received

            report = await client.dnc.import_bulk(entries, batch_size=1_000, checkpoint=checkpoint)
        assert fake.dnc_emails() == {f"user{i}@example.com" for i in range(20_000)}
        assert report.balanced
        assert report.read == len(entries)
        assert report.resumed_batches >= 3
        assert report.imported + report.skipped == 20_000
        # Landed batches were not sent again.
        resent = fake.stats.entries_received - received
        assert resent <= 20_000 - report.resumed_batches * 1_000
    assert "sk_" not in checkpoint.read_text()


async def test_a_checkpoint_for_other_input_is_refused(tmp_path):
    checkpoint = tmp_path / "job.ckpt"
    async with FakeSendKit() as fake, fake.client() as client:
        await client.dnc.import_bulk(distinct_valid(300), batch_size=100, checkpoint=checkpoint)
        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(
                [f"other{i}@example.com" for i in range(300)], batch_size=100, checkpoint=checkpoint
            )
        assert isinstance(caught.value.__cause__, CheckpointMismatchError)
        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(distinct_valid(300), batch_size=50, checkpoint=checkpoint)
        assert "other settings" in str(caught.value.__cause__)


async def test_a_fatal_error_stops_the_job_and_reports_what_was_not_sent():
    async with FakeSendKit(latency=0.01) as fake, fake.client() as client:
        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(
                distinct_valid(5_000), batch_size=250, concurrency=2, on_progress=revoke_key_after(fake, 2)
            )
        report = caught.value.report
        assert "401" in str(caught.value)
        assert report.balanced
        assert report.read < 5_000 or report.not_sent
        assert report.not_sent
        assert {f.kind for f in report.not_sent} <= {FailureKind.NOT_SENT, FailureKind.INTERRUPTED}
        assert report.imported == len(fake.dnc_emails())
        assert fake.stats.by_status[401] <= 2


@pytest.mark.parametrize(("concurrency", "after"), [(4, 1), (4, 5), (8, 3), ("auto", 6)])
async def test_after_a_stop_the_job_decides_its_report_equals_what_the_server_received(concurrency, after):
    """The key is revoked with batches on the wire: they finish and count; nothing new leaves."""
    async with FakeSendKit(latency=0.03) as fake, fake.client() as client:
        entries = list(distinct_valid(20_000))
        with pytest.raises(ImportAbortedError) as caught:
            await client.dnc.import_bulk(
                entries, batch_size=250, concurrency=concurrency, on_progress=revoke_key_after(fake, after)
            )
        report = caught.value.report
        stored = fake.dnc_emails()
        assert report.balanced
        assert report.requests == fake.stats.by_route["POST /v1/dnc/import"]
        assert report.imported == len(stored)
        assert not {f.email for f in report.failed} & stored  # nothing that landed is listed as failed
        assert {f.kind for f in report.failed} <= {FailureKind.NOT_SENT, FailureKind.GAVE_UP}
        assert {f.email for f in report.failed} | stored == set(entries[: report.read])


async def test_rejected_entries_keep_their_position_and_reason(fake_sendkit, sendkit_client):
    items = [
        "a@example.com",
        "nope",
        {"email": "b@example.com", "reason": "bounce"},
        42,
        "A@EXAMPLE.COM",
        "x.org",
    ]
    report = await sendkit_client.dnc.import_bulk(items)
    assert [(r.position, r.value) for r in report.rejected] == [(1, "nope"), (3, "42")]
    assert "invalid domain" in report.rejected[0].reason
    assert (report.read, report.duplicates, report.imported) == (6, 1, 3)
    assert fake_sendkit.dnc_emails() == {"a@example.com", "b@example.com", "x.org"}


async def test_dedupe_can_be_turned_off(sendkit_client):
    report = await sendkit_client.dnc.import_bulk(["a@example.com", "A@example.com"], dedupe=False)
    assert (report.duplicates, report.imported, report.skipped) == (0, 1, 1)


async def test_default_reason_applies_to_items_without_one(sendkit_client):
    await sendkit_client.dnc.import_bulk(
        ["a@example.com", {"email": "b@example.com", "reason": "bounce"}], reason="complaint"
    )
    reasons = {e.email: e.reason async for e in sendkit_client.dnc.list()}
    assert reasons == {"a@example.com": "complaint", "b@example.com": "bounce"}


@pytest.mark.parametrize("batch_size", [0, 10_001])
async def test_batch_size_outside_the_cap_is_a_value_error(fake_sendkit, sendkit_client, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        await sendkit_client.dnc.import_bulk(["a@example.com"], batch_size=batch_size)
    assert fake_sendkit.stats.requests == 0


async def test_batches_are_bounded_in_bytes_too(fake_sendkit, sendkit_client):
    report = await sendkit_client.dnc.import_bulk(distinct_valid(1_000), max_batch_bytes=8_192)
    assert report.imported == 1_000
    assert report.batches > 1
    assert fake_sendkit.stats.largest_batch < 1_000


async def test_async_iterables_and_async_progress_callbacks(sendkit_client):
    async def source():
        for i in range(2_500):
            yield DncEntry(f"u{i}@example.com")

    seen = []

    async def on_progress(progress):
        await asyncio.sleep(0)
        seen.append((progress.read, progress.imported, progress.batches))

    report = await sendkit_client.dnc.import_bulk(source(), batch_size=1_000, on_progress=on_progress)
    assert report.imported == 2_500
    assert max(seen) == (2_500, 2_500, 3)
    assert len(seen) == 3


async def test_iter_import_yields_self_accounting_batches(sendkit_client):
    results = [
        r
        async for r in sendkit_client.dnc.iter_import(distinct_valid(2_500, bad_every=100), batch_size=1_000)
    ]
    assert sorted(r.index for r in results) == [0, 1, 2]
    assert sum(r.read for r in results) == 2_525
    for r in results:
        assert r.read == len(r.rejected) + r.duplicates + r.imported + r.skipped + len(r.failed)


async def test_closing_iter_import_early_cancels_what_is_in_flight():
    async with FakeSendKit(latency=0.2) as fake, fake.client() as client:
        async with contextlib.aclosing(
            client.dnc.iter_import(distinct_valid(10_000), batch_size=100)
        ) as results:
            async for _ in results:
                break
        await asyncio.sleep(0.05)
        assert fake.stats.in_flight == 0
        assert client_tasks() == []


@pytest.mark.parametrize("after", [1, 3, 7])
async def test_an_import_stream_left_early_reports_what_landed_and_every_entry_it_read(after):
    async with FakeSendKit(latency=0.02) as fake, fake.client() as client:
        stream = client.dnc.iter_import(distinct_valid(10_000), batch_size=100, concurrency=4)
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == after:
                break
        await stream.aclose()  # waits for the job: its account is final
        report = stream.report
        assert report.balanced
        assert report.stopped_at == report.read  # every entry it read is in the account
        assert report.batches >= after
        stored = len(fake.dnc_emails())
        assert report.imported <= stored  # nothing claimed that did not land
        assert report.imported + len(report.not_sent) >= stored  # what landed is imported or unknown
        # Requests cut off by the close may or may not have reached the server: at most those in flight.
        received = fake.stats.by_route["POST /v1/dnc/import"]
        assert received <= report.requests <= received + 4
        unknown = {f.email for f in report.failed if f.kind.value == "interrupted"}
        assert {f.email for f in report.failed} - unknown <= set(distinct_valid(10_000)) - fake.dnc_emails()


async def test_a_reader_gone_mid_delivery_is_a_stop_the_report_says_where():
    """A stream closed just as a result is handed over: the send fails, not a cancellation."""
    import anyio  # noqa: PLC0415

    from sendkit_async.bulk import ImportJob, ImportOptions  # noqa: PLC0415

    async with FakeSendKit(latency=0.02) as fake, fake.client() as client:
        job = ImportJob(client.session, distinct_valid(10_000), ImportOptions(batch_size=100, concurrency=4))
        handed = 0

        async def emit(_result, _progress):
            nonlocal handed
            handed += 1
            if handed == 3:
                raise anyio.BrokenResourceError  # what the closed channel's send raises

        with pytest.raises(anyio.BrokenResourceError):
            await job.run(emit)
        report = job.report()
        assert report.balanced
        assert report.stopped_at == report.read < 10_000


async def test_cancelling_the_task_stops_promptly_and_leaves_nothing_behind():
    server_time = FakeClock(auto_advance=False)  # the server holds each request 5 s of its time
    async with FakeSendKit(latency=5, clock=server_time) as fake, fake.client() as client:
        job = client.dnc.import_bulk(distinct_valid(10_000), batch_size=100, concurrency=4)
        task = asyncio.create_task(job)
        # A budget that has heard no answer lets one request out: the server holds it.
        while fake.stats.in_flight < 1:  # noqa: ASYNC110 - waiting for the server to see the request
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=1)
        assert client_tasks() == []
        server_time.advance(5)  # the server finishes what it held, so it shuts down at once


async def test_transient_failures_past_the_retries_are_failed_not_lost():
    async with FakeSendKit(fail_rate=1.0, seed=0) as fake, fake.client(clock=FakeClock()) as client:
        report = await client.dnc.import_bulk(distinct_valid(300), batch_size=100, max_retries=1)
    assert report.balanced
    assert len(report.failed) == 300
    assert {f.kind for f in report.failed} == {FailureKind.GAVE_UP}
    assert "injected fault" in report.failed[0].reason
    assert report.requests == 6


def test_checkpoint_file_is_json_lines_without_the_key(tmp_path):
    async def run():
        async with FakeSendKit() as fake, fake.client() as client:
            await client.dnc.import_bulk(distinct_valid(250), batch_size=100, checkpoint=tmp_path / "c")
            return fake.api_key

    key = asyncio.run(run())
    lines = [json.loads(line) for line in (tmp_path / "c").read_text().splitlines()]
    assert lines[0]["batch_size"] == 100
    assert sorted(line["batch"] for line in lines[1:]) == [0, 1, 2]
    assert key not in (tmp_path / "c").read_text()


async def test_exceptions_in_the_input_are_rejected_with_their_message(sendkit_client):
    report = await sendkit_client.dnc.import_bulk(["a@example.com", ValueError("line 2 is not valid JSON")])
    assert [(r.position, r.reason) for r in report.rejected] == [(1, "line 2 is not valid JSON")]


async def test_validate_bulk_sends_nothing(fake_sendkit, sendkit_client):
    dry = await sendkit_client.dnc.validate_bulk(
        distinct_valid(2_500, bad_every=100, repeat_every=50), batch_size=1_000
    )
    assert (dry.read, len(dry.rejected), dry.duplicates, dry.valid, dry.batches) == (2_575, 25, 50, 2_500, 3)
    assert dry.balanced
    assert fake_sendkit.stats.requests == 0


async def test_an_unknown_default_reason_is_refused_before_sending(fake_sendkit, sendkit_client):
    with pytest.raises(ValueError, match="invalid reason"):
        await sendkit_client.dnc.import_bulk(["a@example.com"], reason="vibes")
    assert fake_sendkit.stats.requests == 0


async def test_an_input_that_raises_stops_the_job_with_an_account(sendkit_client):
    def source():
        yield from (f"u{i}@example.com" for i in range(1_500))
        raise OSError("disk went away")

    with pytest.raises(ImportAbortedError) as caught:
        await sendkit_client.dnc.import_bulk(source(), batch_size=1_000)
    assert isinstance(caught.value.__cause__, OSError)
    report = caught.value.report
    assert report.balanced
    assert report.imported + len(report.not_sent) <= 1_500


async def test_a_torn_last_checkpoint_line_is_ignored(fake_sendkit, sendkit_client, tmp_path):
    checkpoint = tmp_path / "c"
    await sendkit_client.dnc.import_bulk(distinct_valid(300), batch_size=100, checkpoint=checkpoint)
    lines = checkpoint.read_text().splitlines()
    checkpoint.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10])  # a crash mid-write
    report = await sendkit_client.dnc.import_bulk(distinct_valid(300), batch_size=100, checkpoint=checkpoint)
    assert report.resumed_batches == 2
    assert (report.skipped, report.read) == (100, 300)
    assert len(fake_sendkit.dnc_emails()) == 300
    again = await sendkit_client.dnc.import_bulk(distinct_valid(300), batch_size=100, checkpoint=checkpoint)
    assert again.resumed_batches == 3  # the torn line was cut off, not appended to


async def test_a_file_that_is_not_a_checkpoint_is_refused(fake_sendkit, sendkit_client, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("shopping list\n")
    with pytest.raises(ImportAbortedError) as caught:
        await sendkit_client.dnc.import_bulk(["a@example.com"], checkpoint=other)
    assert "not a sendkit_async checkpoint" in str(caught.value.__cause__)
    assert other.read_text() == "shopping list\n"
    assert fake_sendkit.stats.requests == 0


@pytest.mark.parametrize("cut", [1, 4, 9])
async def test_a_client_reused_after_a_cancelled_import_reports_only_what_it_sent(cut):
    """Issue 21's floor bug: after a cancelled job, the next job on the same client reported
    entries as imported that it never sent. Checked against what the server really received."""
    first = [f"first{i}@example.com" for i in range(20_000)]
    second = [f"second{i}@example.com" for i in range(20_000)]
    async with FakeSendKit(latency=0.005) as fake, fake.client() as client:
        partial = None
        with anyio.CancelScope() as scope:

            def stop(progress, cut=cut):
                if progress.batches >= cut:
                    scope.cancel()

            try:
                await client.dnc.import_bulk(first, batch_size=1_000, concurrency=4, on_progress=stop)
            except BaseException as exc:
                partial = getattr(exc, "report", None)
                raise
        assert scope.cancelled_caught
        stored_first = {e for e in fake.dnc_emails() if e.startswith("first")}
        assert partial is not None
        assert partial.balanced
        assert partial.imported <= len(stored_first)  # never more than landed
        received = fake.stats.entries_received

        report = await client.dnc.import_bulk(second, batch_size=1_000, concurrency=4)
        stored_second = {e for e in fake.dnc_emails() if e.startswith("second")}
    assert report.balanced
    assert report.imported == 20_000
    assert stored_second == set(second)
    assert fake.stats.entries_received - received == 20_000  # every entry sent once, none reported unsent

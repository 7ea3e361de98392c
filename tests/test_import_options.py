"""One options object for a bulk job: the same settings for import_bulk, iter_import and validate_bulk."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from sendkit_async import ImportOptions, ValidationError
from sendkit_async.bulk import ImportSettings
from sendkit_async.testing import FakeSendKit

from .test_bulk import distinct_valid


def test_the_keywords_are_the_options_fields():
    """``ImportSettings`` (the keywords) and ``ImportOptions`` (the object) hold the same fields."""
    assert set(ImportSettings.__annotations__) == set(attrs.fields_dict(ImportOptions))


async def test_an_options_object_is_shared_and_keywords_override_it():
    options = ImportOptions(batch_size=100, concurrency=2, max_retries=1)
    async with FakeSendKit() as fake, fake.client() as client:
        report = await client.dnc.import_bulk(list(distinct_valid(500)), options)
        assert report.batches == 5
        smaller = await client.dnc.import_bulk(list(distinct_valid(500)), options, batch_size=50)
        assert smaller.batches == 10
        dry = await client.dnc.validate_bulk(["a@example.com", "bad"], options, max_retries=3)
        assert len(dry.rejected) == 1
        results = [r async for r in client.dnc.iter_import(list(distinct_valid(300)), options, max_retries=0)]
        assert len(results) == 3


async def test_every_setting_is_validated_by_each_entry_point():
    async with FakeSendKit() as fake, fake.client() as client:
        for call in (client.dnc.import_bulk, client.dnc.validate_bulk):
            with pytest.raises(ValidationError, match="unknown import setting"):
                await call(["a@example.com"], batch_sise=10)  # type: ignore[call-arg]
            with pytest.raises(ValidationError, match="max_retries"):
                await call(["a@example.com"], max_retries=-1)
        with pytest.raises(ValidationError, match="options must be an ImportOptions"):
            client.dnc.iter_import(["a@example.com"], {"batch_size": 1})  # type: ignore[arg-type]
        assert fake.stats.requests == 0


async def test_a_cancelled_import_carries_the_report_of_what_landed():
    """The cancellation, as it passes through the code that awaits import_bulk, holds the report."""
    reports = []

    async def worker(client, landed: asyncio.Event) -> None:
        def seen(progress) -> None:
            if progress.batches >= 3:
                landed.set()

        try:
            await client.dnc.import_bulk(
                list(distinct_valid(5_000)), batch_size=100, concurrency=2, on_progress=seen
            )
        except asyncio.CancelledError as exc:
            reports.append(exc.report)
            raise

    async with FakeSendKit(latency=0.02) as fake, fake.client() as client:
        landed = asyncio.Event()
        task = asyncio.create_task(worker(client, landed))
        await landed.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (report,) = reports
        assert report.batches >= 3
        assert report.imported >= 300
        assert report.imported <= len(fake.dnc_emails())

"""OpenTelemetry spans: one per HTTP attempt, one per bulk job, never the key."""

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sendkit_async.testing import FakeSendKit

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _provider():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture(autouse=True)
def _clear():
    EXPORTER.clear()


async def test_a_bulk_job_is_a_span_and_each_attempt_a_child_span_without_the_key():
    async with FakeSendKit(rate_limit=1000) as fake, fake.client() as client:
        await client.dnc.import_bulk([f"u{i}@example.com" for i in range(250)], batch_size=100)
    spans = EXPORTER.get_finished_spans()
    job = next(s for s in spans if s.name == "sendkit dnc.import_bulk")
    attempts = [s for s in spans if s.name == "sendkit POST /v1/dnc/import"]
    assert len(attempts) == 3
    assert all(s.parent is not None and s.parent.span_id == job.context.span_id for s in attempts)
    assert all(s.attributes["http.response.status_code"] == 200 for s in attempts)
    assert all(s.attributes["sendkit.retry_count"] == 0 for s in attempts)
    assert all("sendkit.budget_wait_seconds" in s.attributes for s in attempts)
    assert job.attributes["sendkit.imported"] == 250
    assert job.attributes["sendkit.requests"] == 3
    everything = str([dict(s.attributes) for s in spans]) + str([s.name for s in spans])
    assert fake.api_key not in everything


async def test_ids_in_paths_become_a_route_template_and_failures_mark_the_span():
    async with FakeSendKit() as fake, fake.client(max_retries=0) as client:
        conversation = fake.add_conversation("lead@example.com")
        await client.inbox.update(conversation, mark_read=True)
        with pytest.raises(Exception):  # noqa: B017, PT011 - the 404's class does not matter here
            await client.inbox.update("0" * 24, mark_read=True)
    spans = [s for s in EXPORTER.get_finished_spans() if s.name == "sendkit PATCH /v1/inbox/{id}"]
    assert [s.attributes["http.response.status_code"] for s in spans] == [200, 404]
    assert spans[1].status.status_code is trace.StatusCode.ERROR
    assert all(conversation not in str(dict(s.attributes)) for s in spans)

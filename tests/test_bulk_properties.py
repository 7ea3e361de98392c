"""The accounting invariant holds for every input and every fault pattern."""

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendkit_async.bulk import FailureKind
from sendkit_async.testing import FakeClock, FakeSendKit

valid = st.builds(
    lambda n, domain: f"user{n}@{domain}", st.integers(0, 300), st.sampled_from(["a.com", "B.org"])
)
domains = st.builds(lambda n: f"site{n}.net", st.integers(0, 50))
invalid = st.sampled_from(["", "nope", "a@b", "x@@y.com", "@z.com", "a b@c.com", 7, None])
mappings = st.builds(
    lambda email, reason: {"email": email, "reason": reason},
    valid,
    st.sampled_from(["bounce", "manual", "weird", None]),
)
items = st.lists(st.one_of(valid, valid, domains, invalid, mappings), max_size=400)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=items,
    fail_rate=st.sampled_from([0.0, 0.2, 0.6]),
    drop_rate=st.sampled_from([0.0, 0.1, 0.3]),
    rejects=st.booleans(),
    batch_size=st.integers(1, 60),
    concurrency=st.integers(1, 4),
    max_retries=st.integers(0, 2),
    dedupe=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_invariant_holds_under_random_faults(
    entries, fail_rate, drop_rate, rejects, batch_size, concurrency, max_retries, dedupe, seed
):
    rule = (lambda email: "policy" if email.startswith("user1") else None) if rejects else None

    async def scenario():
        async with FakeSendKit(fail_rate=fail_rate, drop_rate=drop_rate, seed=seed, reject=rule) as fake:
            async with fake.client(clock=FakeClock()) as client:
                report = await client.dnc.import_bulk(
                    entries,
                    batch_size=batch_size,
                    concurrency=concurrency,
                    max_retries=max_retries,
                    dedupe=dedupe,
                )
            return report, fake.dnc_emails(), fake.stats

    report, stored, stats = asyncio.run(scenario())
    assert report.read == len(entries)
    assert report.balanced
    assert report.imported == len(stored)
    assert stats.largest_batch <= batch_size
    assert stats.max_in_flight <= concurrency
    failed = {f.email for f in report.failed}
    assert not (failed - {f.email for f in report.failed if f.kind is FailureKind.GAVE_UP}) & stored
    for entry in report.failed:
        if entry.kind is FailureKind.REJECTED_BY_SERVER:
            assert entry.email.startswith("user1")
    positions = [r.position for r in report.rejected] + [f.position for f in report.failed]
    assert len(positions) == len(set(positions))

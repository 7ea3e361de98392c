"""The accounting invariant holds for every input and every fault pattern."""

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendkit_async import DncReason, EntryType
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


def reference(entries, *, reason, dedupe, kind="auto"):
    """What the batcher must decide, item by item, with the public model alone."""
    from sendkit_async import DncEntry, ValidationError  # noqa: PLC0415

    forced = None if kind == "auto" else EntryType(kind)
    rows, rejected, seen = [], [], set()
    for position, item in enumerate(entries):
        try:
            entry = DncEntry.coerce(item, reason=reason, type=forced)
        except ValidationError as exc:
            rejected.append((position, str(exc)))
            continue
        if dedupe and entry.email in seen:
            continue
        seen.add(entry.email)
        rows.append((position, (entry.email, entry.type.value, entry.reason.value)))
    return rows, rejected


unicode_and_padding = st.builds(
    lambda pad, local, host: f"{pad}{local}@{host}{pad}",
    st.sampled_from(["", " ", "\t", "  \n"]),
    st.sampled_from(["User", "ÜSER", "first.last", "a+b", "ünïcode", "x"]),
    st.sampled_from(["Example.COM", "bücher.de", "ex ample.com", "a.b.c.io", "localhost"]),
)
entry_objects = st.builds(
    lambda n: __import__("sendkit_async").DncEntry(f"obj{n}@example.com"), st.integers(0, 20)
)
typed_mappings = st.builds(
    lambda address, kind, reason: {"email": address, "type": kind, "reason": reason},
    st.one_of(valid, domains, unicode_and_padding),
    st.sampled_from(["email", "domain", "phone", None]),
    st.sampled_from(["bounce", "manual", "import", "nonsense", None]),
)
any_item = st.one_of(valid, domains, invalid, mappings, unicode_and_padding, entry_objects, typed_mappings)


@settings(max_examples=150, deadline=None)
@given(
    entries=st.lists(any_item, max_size=300),
    reason=st.sampled_from([None, "manual"]),
    dedupe=st.booleans(),
    uniform=st.booleans(),
)
def test_the_batchers_fast_path_decides_exactly_as_the_model_does(entries, reason, dedupe, uniform):
    from sendkit_async.bulk import ImportOptions  # noqa: PLC0415

    if uniform:  # a chunk of plain strings takes the one-regex path when they all normalise cleanly
        entries = [e for e in entries if isinstance(e, str)]
    batcher = ImportOptions(batch_size=50, dedupe=dedupe, reason=reason).batcher()

    async def run():
        return [batch async for batch in batcher.batches(entries)]

    batches = asyncio.run(run())
    rows = [(p, row) for b in batches for p, row in zip(b.positions, b.entries.rows(), strict=True)]
    rejected = [(r.position, r.reason) for b in batches for r in b.rejected]
    assert (rows, rejected) == reference(entries, reason=reason, dedupe=dedupe)


def reference_batches(entries, *, reason, dedupe, limit, max_bytes):
    """The per-item batching, written plainly: what the batcher's fast paths must reproduce exactly."""
    from sendkit_async import DncEntry, ValidationError  # noqa: PLC0415

    batches, seen, position = [], set(), 0
    batch = {"start": 0, "positions": [], "rows": [], "rejected": [], "duplicates": 0, "size": 16}
    for item in entries:
        try:
            entry = DncEntry.coerce(item, reason=reason)
        except ValidationError as exc:
            batch["rejected"].append((position, str(exc)))
            position += 1
            continue
        row = (entry.email, entry.type.value, entry.reason.value)
        if dedupe:
            if row[0] in seen:
                batch["duplicates"] += 1
                position += 1
                continue
            seen.add(row[0])
        size = len(row[0]) + 34
        if len(batch["rows"]) >= limit or (batch["rows"] and batch["size"] + size > max_bytes):
            batch["end"] = position
            batches.append(batch)
            batch = {
                "start": position,
                "positions": [],
                "rows": [],
                "rejected": [],
                "duplicates": 0,
                "size": 16,
            }
        batch["positions"].append(position)
        batch["rows"].append(row)
        batch["size"] += size
        position += 1
    batch["end"] = position
    if batch["end"] > batch["start"]:
        batches.append(batch)
    return [
        (b["start"], b["end"], b["positions"], b["rows"], b["rejected"], b["duplicates"]) for b in batches
    ]


def batches_in_chunks(batcher, entries, chunk):
    """Every batch the batcher makes of ``entries``, read ``chunk`` items at a time."""
    import sendkit_async.bulk._prepare as prepare  # noqa: PLC0415

    async def run():
        return [batch async for batch in batcher.batches(entries)]

    original, prepare._CHUNK = prepare._CHUNK, chunk
    try:
        return asyncio.run(run())
    finally:
        prepare._CHUNK = original


def shape(batch):
    """A batch as the reference batching describes one."""
    rejected = [(r.position, r.reason) for r in batch.rejected]
    return (batch.start, batch.end, batch.positions, batch.entries.rows(), rejected, batch.duplicates)


plain = st.one_of(valid, domains, invalid.filter(lambda v: isinstance(v, str)), unicode_and_padding)


@settings(max_examples=150, deadline=None)
@given(
    entries=st.lists(st.one_of(plain, plain, plain, any_item), max_size=200),
    repeats=st.booleans(),
    dedupe=st.booleans(),
    limit=st.integers(1, 40),
    max_bytes=st.sampled_from([1024, 1500, 4096, 2 * 1024 * 1024]),
    chunk=st.sampled_from([3, 16, 1024]),
)
def test_batches_match_the_per_item_batching_exactly(entries, repeats, dedupe, limit, max_bytes, chunk):
    from sendkit_async.bulk import ImportOptions  # noqa: PLC0415

    if repeats:
        entries = entries + entries[: len(entries) // 2]
    batcher = ImportOptions(batch_size=limit, max_batch_bytes=max_bytes, dedupe=dedupe).batcher()
    actual = list(map(shape, batches_in_chunks(batcher, entries, chunk)))
    assert actual == reference_batches(entries, reason=None, dedupe=dedupe, limit=limit, max_bytes=max_bytes)


def _email_dict(address, kind, reason, extra):
    item = {"email": address}
    item.update({"type": kind} if kind != "-" else {})
    item.update({"reason": reason} if reason != "-" else {})
    item.update({extra: "x"} if extra else {})
    return item


# Chunks of dicts, mostly of the shape the column path reads ("-": the key left out), with every
# way out of it mixed in: other types and reasons, their enum members, extra keys, non-strings.
email_dicts = st.builds(
    _email_dict,
    st.one_of(valid, valid, unicode_and_padding, st.sampled_from(["", "nope", "x.org", 7, None, b"a@b.co"])),
    st.sampled_from(["-", "-", "email", None, "", 0, "Email", "domain", "phone", EntryType.EMAIL]),
    st.sampled_from(["-", "bounce", None, "", "BOUNCE", "nonsense", DncReason.MANUAL, ("a",)]),
    st.sampled_from(["", "", "", "domain", "reasn"]),
)


@settings(max_examples=150, deadline=None)
@given(
    entries=st.lists(email_dicts, min_size=1, max_size=120),
    shared=st.booleans(),
    reason=st.sampled_from([None, "manual"]),
    kind=st.sampled_from(["auto", "email"]),
    dedupe=st.booleans(),
    chunk=st.sampled_from([5, 1024]),
)
def test_chunks_of_dicts_decide_exactly_as_the_model_does(entries, shared, reason, kind, dedupe, chunk):
    from sendkit_async.bulk import ImportOptions  # noqa: PLC0415

    if shared:  # one type and reason for all: the column path's usual chunk
        entries = [
            {**item, "type": entries[0].get("type"), "reason": entries[0].get("reason")} for item in entries
        ]
    batcher = ImportOptions(batch_size=30, dedupe=dedupe, reason=reason, type=kind).batcher()
    batches = batches_in_chunks(batcher, entries, chunk)
    rows = [(p, row) for b in batches for p, row in zip(b.positions, b.entries.rows(), strict=True)]
    rejected = [(r.position, r.reason) for b in batches for r in b.rejected]
    assert (rows, rejected) == reference(entries, reason=reason, dedupe=dedupe, kind=kind)


@pytest.mark.parametrize("as_dicts", [False, True], ids=["strings", "dicts"])
@pytest.mark.parametrize(
    ("dedupe", "limit", "max_bytes"), [(True, 7, 2 * 1024 * 1024), (False, 7, 1024), (True, 40, 1500)]
)
def test_clean_chunks_take_the_fast_path_and_batch_exactly_as_item_by_item(
    dedupe, limit, max_bytes, as_dicts, monkeypatch
):
    import sendkit_async.bulk._prepare as prepare  # noqa: PLC0415
    from sendkit_async.bulk import ImportOptions  # noqa: PLC0415

    entries = [f"  User{i % 150}@Example.COM\t" for i in range(300)]  # clean, padded, repeats in later chunks
    if as_dicts:
        entries = [{"email": email, "type": "email"} for email in entries]
    fast_slices = []
    original_slices = prepare.Batcher._slices

    def counting_slices(self, cursor, normal):
        closed = original_slices(self, cursor, normal)
        fast_slices.append(closed is not None)
        return closed

    monkeypatch.setattr(prepare.Batcher, "_slices", counting_slices)
    monkeypatch.setattr(prepare, "_CHUNK", 16)
    batcher = ImportOptions(batch_size=limit, max_batch_bytes=max_bytes, dedupe=dedupe).batcher()

    async def run():
        return [batch async for batch in batcher.batches(entries)]

    produced = asyncio.run(run())
    actual = list(map(shape, produced))
    assert any(fast_slices)  # the fast path ran
    assert actual == reference_batches(entries, reason=None, dedupe=dedupe, limit=limit, max_bytes=max_bytes)


# Addresses built from the pieces the validation rules are about: dots and
# hyphens at every edge, long parts, punycode, specials, case and unicode.
_atoms = st.sampled_from(["a", "b1", "x-y", "-", "--", "z-", "-q", "!#$", "xn--", "", "é", "A"])
_labels = st.sampled_from(
    ["ex", "a-b", "-a", "b-", "xn--bcher-kva", "9", "", "co", "é", "Co", "x" * 63, "y" * 64]
)
_tlds = st.sampled_from(["com", "io", "c", "xn--p1ai", "xn--", "x1", "com-", "a" * 63, "b" * 64, ""])
shaped_addresses = st.builds(
    lambda local, labels, tld, pad: f"{'.'.join(local)}@{'.'.join([*labels, tld])}" + pad,
    st.lists(_atoms, min_size=1, max_size=4),
    st.lists(_labels, min_size=0, max_size=3),
    _tlds,
    st.sampled_from(["", "", "", "x" * 60, "\n"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(shaped_addresses, valid), min_size=1, max_size=8))
def test_the_one_pass_address_check_never_accepts_what_the_model_would_change_or_refuse(emails):
    from sendkit_async._errors import ValidationError  # noqa: PLC0415
    from sendkit_async._validate import (  # noqa: PLC0415
        _EMAIL_LINES,
        _short_and_plain,
        all_normal_emails,
        normalize_email,
    )

    def unchanged(email):
        try:
            return normalize_email(email) == email
        except ValidationError:
            return False

    joined = "\n".join(emails)
    if all_normal_emails(emails):
        assert all(map(unchanged, emails))
    if joined.count("\n") == len(emails) - 1 and _short_and_plain(emails, joined):
        assert _EMAIL_LINES.fullmatch(joined)  # the cheap tier is stricter than the full one
    if all(map(unchanged, emails)) and joined.count("\n") == len(emails) - 1:
        assert all_normal_emails(emails)  # and together they accept every clean list


def test_ordinary_addresses_take_the_cheap_tier():
    from sendkit_async._validate import _short_and_plain  # noqa: PLC0415

    emails = ["user.1@example.com", "a+b@mail.co.uk", "x_y@xn--bcher-kva.de", "first-last@sub-domain.io"]
    assert _short_and_plain(emails, "\n".join(emails))
    assert not _short_and_plain(["a@b-.com"], "a@b-.com")
    assert not _short_and_plain(["a..b@c.com"], "a..b@c.com")


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(st.one_of(plain, plain, any_item), max_size=300),
    first_bits=st.sampled_from([0, 1, 10]),
    chunk=st.sampled_from([3, 16, 4096]),
)
def test_dedupe_decides_the_same_whatever_the_chunks_and_however_often_its_table_grows(
    entries, first_bits, chunk
):
    import sendkit_async.bulk._prepare as prepare  # noqa: PLC0415
    import sendkit_async.bulk._seen as seen_module  # noqa: PLC0415
    from sendkit_async.bulk import ImportOptions  # noqa: PLC0415

    entries = entries + entries[::2]  # repeats, before and after the table grows
    original = prepare._CHUNK, seen_module._FIRST_BITS
    prepare._CHUNK, seen_module._FIRST_BITS = chunk, first_bits  # a tiny table grows (and stashes) often
    try:
        batcher = ImportOptions(batch_size=25, dedupe=True).batcher()

        async def run():
            return [batch async for batch in batcher.batches(entries)]

        produced = asyncio.run(run())
    finally:
        prepare._CHUNK, seen_module._FIRST_BITS = original
    assert list(map(shape, produced)) == reference_batches(
        entries, reason=None, dedupe=True, limit=25, max_bytes=2 * 1024 * 1024
    )
    assert len(batcher.seen) == 0  # forgotten once the input was all read

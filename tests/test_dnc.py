import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendkit_async import DncEntry, DncRecord, UnexpectedResponseError, ValidationError

from .conftest import API

SEED_ENTRIES = [
    {"email": "bounce1@example.com", "type": "email", "reason": "bounce"},
    {"email": "bounce2@example.com", "type": "email", "reason": "bounce"},
    {"email": "badcompany.com", "type": "domain", "reason": "manual"},
]


async def test_seed_import_sample_round_trips(fake_sendkit, sendkit_client):
    result = await sendkit_client.dnc.import_entries(SEED_ENTRIES)
    assert (result.imported, result.skipped) == (3, 0)
    assert fake_sendkit.dnc_emails() == {"bounce1@example.com", "bounce2@example.com", "badcompany.com"}


async def test_existing_entries_are_skipped_and_emails_lowercased(fake_sendkit, sendkit_client):
    fake_sendkit.add_dnc(["old@example.com"])
    result = await sendkit_client.dnc.import_entries(
        ["OLD@example.com", "New@Example.com", DncEntry("x.org")]
    )
    assert (result.imported, result.skipped) == (2, 1)
    assert fake_sendkit.dnc_emails() == {"old@example.com", "new@example.com", "x.org"}


async def test_25000_entries_in_one_call_raise_before_sending(fake_sendkit, sendkit_client):
    entries = (f"user{i}@example.com" for i in range(25_000))
    with pytest.raises(ValidationError, match="at most 10,000"):
        await sendkit_client.dnc.import_entries(entries)
    assert fake_sendkit.stats.requests == 0


async def test_exactly_10000_entries_go_in_one_call(fake_sendkit, sendkit_client):
    result = await sendkit_client.dnc.import_entries([f"user{i}@example.com" for i in range(10_000)])
    assert result.imported == 10_000
    assert fake_sendkit.stats.largest_batch == 10_000


@pytest.mark.parametrize("entries", [[], ["ok@example.com", "not an email"], [{"type": "email"}]])
async def test_bad_import_input_raises_and_sends_nothing(fake_sendkit, sendkit_client, entries):
    with pytest.raises(ValidationError):
        await sendkit_client.dnc.import_entries(entries)
    assert fake_sendkit.stats.requests == 0


async def test_invalid_entry_error_names_its_index(sendkit_client):
    with pytest.raises(ValidationError, match=r"entries\[1\]"):
        await sendkit_client.dnc.import_entries(["ok@example.com", "bad@@example.com"])


@pytest.mark.parametrize("mode", ["cursor", "page"])
async def test_list_walks_every_page(fake_sendkit, sendkit_client, mode):
    emails = [f"u{i}@example.com" for i in range(57)]
    fake_sendkit.add_dnc(emails)
    fake_sendkit.add_dnc(["d1.com", "d2.com"])
    listed = [entry async for entry in sendkit_client.dnc.list(type="email", limit=10, mode=mode)]
    assert [e.email for e in listed] == emails
    assert all(isinstance(e, DncRecord) and e.created_at.tzinfo for e in listed)
    assert fake_sendkit.stats.by_route["GET /v1/dnc"] == 6


async def test_type_filter_and_single_page(fake_sendkit, sendkit_client):
    fake_sendkit.add_dnc(["a@example.com", "spamtrap.com"])
    page = await sendkit_client.dnc.get_page(type="domain", page=1, limit=5)
    assert [e.email for e in page.items] == ["spamtrap.com"]
    assert (page.pagination.total, page.pagination.page, page.pagination.pages) == (1, 1, 1)


async def test_pages_exposes_pagination(fake_sendkit, sendkit_client):
    fake_sendkit.add_dnc([f"u{i}@example.com" for i in range(5)])
    pages = [p async for p in sendkit_client.dnc.pages(limit=2, mode="cursor")]
    assert [len(p.items) for p in pages] == [2, 2, 1]
    # The first request carries no cursor yet, so the server answers in page mode.
    assert (pages[0].pagination.page, pages[0].pagination.pages) == (1, 3)
    assert [p.pagination.has_more for p in pages[1:]] == [True, False]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"page": 0}, "page"),
     ({"type": "phone"}, "type"), ({"page": 1, "cursor": "664a1b2c3d4e5f6a7b8c9d0e"}, "not both")],
)  # fmt: skip
async def test_bad_list_arguments_raise_before_sending(fake_sendkit, sendkit_client, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        await sendkit_client.dnc.get_page(**kwargs)
    assert fake_sendkit.stats.requests == 0


RECORD = {"_id": "", "email": "a@example.com", "entryType": "email", "reason": "manual"}
LIST_URL = re.compile(rf"^{API}/v1/dnc\?.*$")


def record(n):
    return {**RECORD, "_id": f"{n:024x}", "email": f"u{n}@example.com"}


async def test_page_mode_keeps_going_through_short_and_empty_pages(client, wire):
    pagination = {"total": 5, "limit": 2, "pages": 4}
    for page, items in [(1, [record(1)]), (2, []), (3, [record(3), record(4)]), (4, [record(5)])]:
        wire.get(
            LIST_URL, payload={"success": True, "data": items, "pagination": {**pagination, "page": page}}
        )
    emails = [e.email async for e in client.dnc.list(limit=2, mode="page")]
    assert emails == ["u1@example.com", "u3@example.com", "u4@example.com", "u5@example.com"]
    pages = [request.url.query["page"] for request in wire.sent()]
    assert pages == ["1", "2", "3", "4"]


async def test_cursor_mode_follows_next_cursor_through_an_empty_page(client, wire):
    wire.get(LIST_URL, payload={"success": True, "data": [record(1)], "pagination": {"hasMore": True}})
    wire.get(
        LIST_URL,
        payload={"success": True, "data": [], "pagination": {"nextCursor": f"{7:024x}", "hasMore": True}},
    )
    wire.get(LIST_URL, payload={"success": True, "data": [record(8)], "pagination": {"hasMore": False}})
    emails = [e.email async for e in client.dnc.list(limit=1)]
    assert emails == ["u1@example.com", "u8@example.com"]
    urls = [str(request.url) for request in wire.sent()]
    assert "cursor" not in urls[0]
    assert f"cursor={1:024x}" in urls[1]
    assert f"cursor={7:024x}" in urls[2]


async def test_cursor_mode_without_pagination_hints_stops_at_an_empty_page(client, wire):
    wire.get(LIST_URL, payload={"success": True, "data": [record(1), record(2)]})
    wire.get(LIST_URL, payload={"success": True, "data": []})
    assert len([e async for e in client.dnc.list(limit=2)]) == 2
    assert len(wire.sent()) == 2


async def test_a_repeated_cursor_stops_the_walk(client, wire):
    page = {"success": True, "data": [record(1)], "pagination": {"nextCursor": f"{1:024x}", "hasMore": True}}
    wire.get(LIST_URL, payload=page, repeat=True)
    with pytest.raises(UnexpectedResponseError, match="again"):
        _ = [e async for e in client.dnc.list(limit=1)]


@pytest.mark.parametrize(
    "rows",
    [
        [("a@x.com", "email", "import"), ("b@y.org", "email", "import")],
        [("a+b@x.com", "email", "bounce")],
        [("a@x.com", "email", "import"), ("x.org", "domain", "manual")],
    ],
)
def test_a_prepared_batch_body_is_the_same_json_as_its_wire_rows(rows):
    import orjson  # noqa: PLC0415

    from sendkit_async.dnc import PreparedEntries  # noqa: PLC0415

    prepared = PreparedEntries()
    for row in rows:
        prepared.append(*row)
    assert prepared.rows() == rows
    wire = [{"email": email, "type": kind, "reason": reason} for email, kind, reason in rows]
    assert orjson.loads(prepared.body()) == {"entries": wire}
    assert prepared[1:].rows() == rows[1:]


@given(st.lists(st.text(max_size=12), min_size=1, max_size=6))
def test_a_prepared_body_is_valid_json_whatever_its_strings_hold(emails):
    # The one-join path must never let a quote, backslash or control character out of its string.
    import orjson  # noqa: PLC0415

    from sendkit_async.dnc import PreparedEntries  # noqa: PLC0415

    prepared = PreparedEntries(list(emails), "email", "import")
    wire = [{"email": email, "type": "email", "reason": "import"} for email in emails]
    assert orjson.loads(prepared.body()) == {"entries": wire}

from datetime import datetime, timezone

import orjson
import pytest

from sendkit_async import (
    Conversation,
    DncEntry,
    DncPage,
    DncReason,
    DncRecord,
    EntryType,
    Pagination,
    ValidationError,
)
from sendkit_async._convert import structure, unstructure


@pytest.mark.parametrize(
    ("value", "email", "type_"),
    [
        (" Bounce@Example.COM ", "bounce@example.com", EntryType.EMAIL),
        ("BadCompany.com", "badcompany.com", EntryType.DOMAIN),
        ("müller.de", "xn--mller-kva.de", EntryType.DOMAIN),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk", EntryType.EMAIL),
    ],
)
def test_entries_are_normalised_and_typed(value, email, type_):
    entry = DncEntry(value)
    assert (entry.email, entry.type, entry.reason) == (email, type_, DncReason.IMPORT)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"email": "no-at-sign-but-email", "type": "email"}, "looks like a domain"),
        ({"email": "two@@example.com", "type": "email"}, "invalid email"),
        ({"email": "a@b"}, "invalid email"),
        ({"email": "a..b@example.com"}, "invalid email"),
        ({"email": "@example.com"}, "invalid email"),
        ({"email": "x@-bad-.com"}, "invalid email"),
        ({"email": "localhost"}, "invalid domain"),
        ({"email": "a@example.com", "type": "phone"}, "invalid entry type"),
        ({"email": "a@example.com", "reason": "because"}, "invalid reason"),
        ({"email": 42}, "must be a string"),
    ],
)
def test_invalid_entries_raise_validation_errors(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        DncEntry(**kwargs)


def test_validation_error_is_a_value_error():
    with pytest.raises(ValueError):  # noqa: PT011
        DncEntry("nope")


def test_coerce_takes_strings_mappings_and_entries():
    entry = DncEntry("a@example.com", reason="bounce")
    assert DncEntry.coerce(entry) is entry
    assert DncEntry.coerce({"email": "B@x.com", "type": "email", "reason": "manual"}) == DncEntry(
        "b@x.com", reason="manual"
    )
    assert DncEntry.coerce({"domain": "x.com"}).type is EntryType.DOMAIN
    assert DncEntry.coerce("c@x.com", reason="complaint").reason is DncReason.COMPLAINT
    with pytest.raises(ValidationError):
        DncEntry.coerce(3.14)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mapping", [{"email": "a@x.com", "reasn": "bounce"}, {"email": "a@x.com", "extra": 1}]
)
def test_an_unknown_field_in_an_entry_mapping_is_refused_by_name(mapping):
    unknown = next(key for key in mapping if key != "email")
    with pytest.raises(ValidationError, match=unknown):
        DncEntry.coerce(mapping)


def test_entries_go_to_the_wire_as_the_page_shows():
    assert unstructure(DncEntry("badcompany.com", reason="manual")) == {
        "email": "badcompany.com",
        "type": "domain",
        "reason": "manual",
    }


SEED_RECORD = {
    "_id": "664a1b2c3d4e5f6a7b8c9d0e",
    "email": "unsubscribed@example.com",
    "entryType": "email",
    "workspaceId": "ws_123",
    "reason": "manual",
    "unsubscribedAt": "2024-06-01T10:00:00.000Z",
    "createdAt": "2024-06-01T10:00:00.000Z",
    "updatedAt": "2024-06-01T10:00:00.000Z",
    "someFieldAddedLater": {"x": 1},
}


def test_records_map_camel_case_and_underscore_id_and_ignore_new_fields():
    record = structure(SEED_RECORD, DncRecord)
    assert record.id == "664a1b2c3d4e5f6a7b8c9d0e"
    assert record.entry_type == "email"
    assert record.workspace_id == "ws_123"
    assert record.created_at == datetime(2024, 6, 1, 10, tzinfo=timezone.utc)
    assert record.created_at.tzinfo is not None


def test_naive_timestamps_are_taken_as_utc():
    record = structure({**SEED_RECORD, "createdAt": "2024-06-01T10:00:00"}, DncRecord)
    assert record.created_at == datetime(2024, 6, 1, 10, tzinfo=timezone.utc)


def test_conversation_and_pagination_structure():
    data = {"id": "664a1b2c3d4e5f6a7b8c9d0e", "aiTag": "interested", "tags": ["vip"]}
    assert structure(data, Conversation) == Conversation("664a1b2c3d4e5f6a7b8c9d0e", "interested", ("vip",))
    assert structure({"total": 45, "page": 1, "limit": 20, "pages": 3}, Pagination).pages == 3
    assert structure({"nextCursor": "abc", "hasMore": True}, Pagination).next_cursor == "abc"


def test_an_entry_that_insists_on_an_email_refuses_a_domain():
    # What the README's web example relies on: /unsubscribe/gmail.com must not list a whole domain.
    with pytest.raises(ValidationError):
        DncEntry("gmail.com", type="email")


def test_a_listed_record_has_typed_fields_and_keeps_a_reason_it_does_not_know():

    wire = {"_id": "a" * 24, "email": "x.org", "entryType": "domain", "reason": "bounce"}
    record = structure(wire, DncRecord)
    assert record.entry_type is EntryType.DOMAIN
    assert record.reason is DncReason.BOUNCE
    assert str(record.entry_type) == "domain"  # str() and f-strings give the value on every Python
    assert f"{record.reason}" == "bounce"
    newer = structure({**wire, "reason": "spam_trap"}, DncRecord)
    assert newer.reason == "spam_trap"
    assert not isinstance(newer.reason, DncReason)


def test_to_dict_gives_json_ready_data_in_either_case():
    record = DncRecord(
        id="a" * 24,
        email="x.org",
        entry_type=EntryType.DOMAIN,
        reason="manual",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    )
    snake = record.to_dict()
    assert snake["entry_type"] == "domain"
    assert snake["created_at"] == "2026-01-02T03:04:05Z"
    camel = record.to_dict(case="camel")
    assert camel["_id"] == "a" * 24
    assert camel["entryType"] == "domain"
    page = DncPage(items=(record,), pagination=Pagination(total=1, next_cursor="c"))
    data = page.to_dict(case="camel")
    assert data["pagination"]["nextCursor"] == "c"
    assert isinstance(data["items"], list)
    assert orjson.loads(orjson.dumps(data)) == data
    assert Conversation(id="b" * 24, tags=("vip",)).to_dict() == {
        "id": "b" * 24,
        "ai_tag": None,
        "tags": ["vip"],
    }

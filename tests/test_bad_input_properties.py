"""Random bad values for every public parameter: a typed error every time, and nothing sent."""

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sendkit_async import SendKit, SendKitError
from sendkit_async.testing import FakeClock

from .conftest import KEY
from .wire import Wire

ID = "664a1b2c3d4e5f6a7b8c9d0e"

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 200),
    st.sampled_from([math.nan, math.inf, -math.inf, -1.5, 1.5, 0.0, 10.0]),
    st.text(max_size=6),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
)


def whole(value, low, high=math.inf):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def tag_ok(value):
    """The SDK's documented rule: a non-blank string of at most 256 characters, no C0/C1 controls."""
    controls = any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value) if isinstance(value, str) else True
    return isinstance(value, str) and value.strip() != "" and len(value) <= 256 and not controls


def is_id(value):
    return isinstance(value, str) and len(value) == 24 and all(c in "0123456789abcdef" for c in value)


# parameter -> (the call with that parameter set to the value, is the value acceptable there?)
CASES = {
    "get_page limit": (lambda c, v: c.dnc.get_page(limit=v), lambda v: v is None or whole(v, 1, 100)),
    "get_page page": (lambda c, v: c.dnc.get_page(page=v), lambda v: v is None or whole(v, 1)),
    "get_page cursor": (lambda c, v: c.dnc.get_page(cursor=v), lambda v: v is None or isinstance(v, str)),
    "get_page type": (lambda c, v: c.dnc.get_page(type=v), lambda v: v in (None, "email", "domain")),
    "list mode": (lambda c, v: anext(c.dnc.list(mode=v)), lambda v: v in ("cursor", "page")),
    "list limit": (lambda c, v: anext(c.dnc.list(limit=v)), lambda v: v is None or whole(v, 1, 100)),
    "import_entries entries": (lambda c, v: c.dnc.import_entries(v), lambda _v: False),
    "import_bulk entries": (lambda c, v: c.dnc.import_bulk(v), lambda v: isinstance(v, list)),
    "import_bulk concurrency": (
        lambda c, v: c.dnc.import_bulk(["a@example.com"], concurrency=v),
        lambda v: whole(v, 1),
    ),
    "import_bulk batch_size": (
        lambda c, v: c.dnc.import_bulk(["a@example.com"], batch_size=v),
        lambda v: whole(v, 1, 10_000),
    ),
    "import_bulk max_rate": (
        lambda c, v: c.dnc.import_bulk(["a@example.com"], max_rate=v),
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf),
    ),
    "import_bulk dedupe": (
        lambda c, v: c.dnc.import_bulk(["a@example.com"], dedupe=v),
        lambda v: v in (True, False),
    ),
    "import_bulk max_retries": (
        lambda c, v: c.dnc.import_bulk(["a@example.com"], max_retries=v),
        lambda v: whole(v, 0),
    ),
    "mark_read conversation_ids": (lambda c, v: c.inbox.mark_read(v), lambda _v: False),
    "mark_read select_all": (lambda c, v: c.inbox.mark_read(select_all=v), lambda v: v is True),
    "mark_read filters": (
        lambda c, v: c.inbox.mark_read(select_all=True, filters=v),
        lambda v: v is None or (isinstance(v, dict) and all(k for k in v)),
    ),
    "mark_read concurrency": (lambda c, v: c.inbox.mark_read([ID], concurrency=v), lambda v: whole(v, 1)),
    "update conversation_id": (lambda c, v: c.inbox.update(v, mark_read=True), is_id),
    "update mark_read": (lambda c, v: c.inbox.update(ID, mark_read=v), lambda v: v in (True, False)),
    "update ai_tag": (
        lambda c, v: c.inbox.update(ID, ai_tag=v),
        lambda v: v is None or tag_ok(v),
    ),
    "update tags": (
        lambda c, v: c.inbox.update(ID, tags=v),
        lambda v: isinstance(v, list) and all(tag_ok(t) for t in v),
    ),
    "update_many concurrency": (
        lambda c, v: c.inbox.update_many([ID], mark_read=True, concurrency=v),
        lambda v: whole(v, 1),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@settings(max_examples=30, deadline=None)
@given(value=junk)
async def test_a_bad_value_is_a_typed_error_and_nothing_is_sent(case, value):
    call, acceptable = case
    assume(not acceptable(value))
    wire = Wire()
    async with SendKit(api_key=KEY, clock=FakeClock(), transport=wire) as client:
        with pytest.raises(SendKitError):
            await call(client, value)
    assert wire.requests == []


CLIENT_SETTINGS = {
    "api_key": lambda v: isinstance(v, str) and v.startswith("sk_") and v.isprintable() and " " not in v,
    "timeout": lambda v: (
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf)
    ),
    "max_retries": lambda v: whole(v, 0),
    "max_retry_wait": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf,
}


@pytest.mark.parametrize("name", CLIENT_SETTINGS)
@settings(max_examples=30, deadline=None)
@given(value=junk)
def test_a_bad_client_setting_is_a_typed_error(name, value):
    assume(not CLIENT_SETTINGS[name](value))
    kwargs = {"api_key": KEY, name: value}
    with pytest.raises(SendKitError):
        SendKit(**kwargs)

"""The call boundary is typed: junk for any parameter of any public entry point, and only typed errors escape.

For every public callable and each of its parameters, hypothesis puts junk
there (the other arguments valid) and checks three things:

* only a :class:`SendKitError` or a ``TypeError`` escapes;
* a call refused that way sent nothing (counted on a real fake server);
* no call ever sends a request the fake server finds malformed (a 400).

The default run is quick; ``nox -s properties`` runs 2,000 examples per parameter.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendkit_async import (
    NOT_GIVEN,
    BadRequestError,
    ConfigurationError,
    DncEntry,
    ImportOptions,
    RetryPolicy,
    SendKit,
    SendKitError,
    Timeout,
    ValidationError,
)
from sendkit_async.budget import Lane, LocalBudget, RateCap, RedisBudget
from sendkit_async.bulk import RedisCheckpoints
from sendkit_async.testing import FakeClock, FakeSendKit

EXAMPLES = int(os.environ.get("SENDKIT_BOUNDARY_EXAMPLES", "15"))
ID = "664a1b2c3d4e5f6a7b8c9d0e"

_SPECIAL = [
    "",
    " ",
    "\r\n",
    "a\nX-Injected: 1",
    "é",
    "\x00",
    "sk_",
    "sk_live_x",
    "/v1/dnc",
    "//evil.example/x",
    "/v1/../admin",
    "http://evil.example/",
    "GET",
    "TRACE",
    ID,
    "email",
    "domain",
    "auto",
    "a@example.com",
    "gmail.com",
    "x" * 300,
    "redis://",
    "redis://:secret@",
    "redis://host:notaport/0",
    "redis://[::1/0",
    "rediss://h:6379/x",
    "unix://",
    "redis+sentinel://",
    "redis+sentinel://h:1/",
    "redis+cluster://h:x/",
    "redis+cluster:///",
]
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-9, 0.5, 1e300]),
    st.text(max_size=12),
    st.sampled_from(_SPECIAL),
    st.binary(max_size=6),
    st.just(object()),
    st.just(NOT_GIVEN),
    st.sampled_from([Lane.BULK, Timeout(total=1), print, len]),
)
junk = st.one_of(
    _leaf,
    st.lists(_leaf, max_size=4),
    st.tuples(_leaf, _leaf),
    st.sets(st.integers(0, 3), max_size=2),
    st.dictionaries(
        st.one_of(st.text(max_size=8), st.sampled_from(_SPECIAL), st.integers()), _leaf, max_size=3
    ),
)

Call = Callable[[SendKit, Any], Awaitable[Any]]


async def _first(stream: Any) -> None:
    async for _ in stream:
        break


def _client_kwargs(fake: FakeSendKit) -> dict[str, Any]:
    return {"api_key": fake.api_key, "base_url": fake.url, "clock": FakeClock()}


# The endpoints and helpers of the client: name -> call with the junk in that parameter.
ENDPOINTS: dict[str, Call] = {
    "with_options timeout": lambda c, v: c.with_options(timeout=v).dnc.get_page(limit=1),
    "with_options max_retries": lambda c, v: c.with_options(max_retries=v).dnc.get_page(limit=1),
    "with_options max_retry_wait": lambda c, v: c.with_options(max_retry_wait=v).dnc.get_page(limit=1),
    "with_options max_queue_wait": lambda c, v: c.with_options(max_queue_wait=v).dnc.get_page(limit=1),
    "with_options headers": lambda c, v: c.with_options(headers=v).dnc.get_page(limit=1),
    "with_options lane": lambda c, v: c.with_options(lane=v).dnc.get_page(limit=1),
    "request method": lambda c, v: c.request(v, "/v1/dnc"),
    "request path": lambda c, v: c.request("GET", v),
    "request params": lambda c, v: c.request("GET", "/v1/dnc", params=v),
    "request json": lambda c, v: c.request("POST", "/v1/inbox/mark-read", json=v),
    "import_entries entries": lambda c, v: c.dnc.import_entries(v),
    "import_entries an entry": lambda c, v: c.dnc.import_entries([v]),
    "import_entries timeout": lambda c, v: c.dnc.import_entries(["a@example.com"], timeout=v),
    "import_entries extra_headers": lambda c, v: c.dnc.import_entries(["a@example.com"], extra_headers=v),
    "get_page type": lambda c, v: c.dnc.get_page(type=v),
    "get_page limit": lambda c, v: c.dnc.get_page(limit=v),
    "get_page page": lambda c, v: c.dnc.get_page(page=v),
    "get_page cursor": lambda c, v: c.dnc.get_page(cursor=v),
    "get_page timeout": lambda c, v: c.dnc.get_page(timeout=v),
    "get_page extra_headers": lambda c, v: c.dnc.get_page(extra_headers=v),
    "list type": lambda c, v: _first(c.dnc.list(type=v)),
    "list limit": lambda c, v: _first(c.dnc.list(limit=v)),
    "list mode": lambda c, v: _first(c.dnc.list(mode=v)),
    "list start": lambda c, v: _first(c.dnc.list(start=v)),
    "list start in page mode": lambda c, v: _first(c.dnc.list(mode="page", start=v)),
    "list concurrency": lambda c, v: _first(c.dnc.list(concurrency=v)),
    "list prefetch": lambda c, v: _first(c.dnc.list(prefetch=v)),
    "pages timeout": lambda c, v: _first(c.dnc.pages(timeout=v)),
    "pages extra_headers": lambda c, v: _first(c.dnc.pages(extra_headers=v)),
    "import_bulk entries": lambda c, v: c.dnc.import_bulk(v),
    "import_bulk options": lambda c, v: c.dnc.import_bulk(["a@example.com"], v),
    "import_bulk on_progress": lambda c, v: c.dnc.import_bulk(["a@example.com"], on_progress=v),
    "validate_bulk entries": lambda c, v: c.dnc.validate_bulk(v),
    "iter_import entries": lambda c, v: _first(c.dnc.iter_import(v)),
    "iter_import options": lambda c, v: _first(c.dnc.iter_import(["a@example.com"], v)),
    "mark_read conversation_ids": lambda c, v: c.inbox.mark_read(v),
    "mark_read select_all": lambda c, v: c.inbox.mark_read(select_all=v),
    "mark_read filters": lambda c, v: c.inbox.mark_read(select_all=True, filters=v),
    "mark_read exclude_ids": lambda c, v: c.inbox.mark_read(select_all=True, exclude_ids=v),
    "mark_read max_ids_per_request": lambda c, v: c.inbox.mark_read([ID], max_ids_per_request=v),
    "mark_read concurrency": lambda c, v: c.inbox.mark_read([ID], concurrency=v),
    "mark_read timeout": lambda c, v: c.inbox.mark_read([ID], timeout=v),
    "mark_read extra_headers": lambda c, v: c.inbox.mark_read([ID], extra_headers=v),
    "add_leads_to_dnc conversation_ids": lambda c, v: c.inbox.add_leads_to_dnc(v),
    "add_leads_to_dnc filters": lambda c, v: c.inbox.add_leads_to_dnc(select_all=True, filters=v),
    "update conversation_id": lambda c, v: c.inbox.update(v, mark_read=True),
    "update mark_read": lambda c, v: c.inbox.update(ID, mark_read=v),
    "update ai_tag": lambda c, v: c.inbox.update(ID, ai_tag=v),
    "update tags": lambda c, v: c.inbox.update(ID, tags=v),
    "update timeout": lambda c, v: c.inbox.update(ID, mark_read=True, timeout=v),
    "update extra_headers": lambda c, v: c.inbox.update(ID, mark_read=True, extra_headers=v),
    "update_many conversation_ids": lambda c, v: c.inbox.update_many(v, mark_read=True),
    "update_many mark_read": lambda c, v: c.inbox.update_many([ID], mark_read=v),
    "update_many concurrency": lambda c, v: c.inbox.update_many([ID], mark_read=True, concurrency=v),
}


def _import_with(name: str) -> Call:
    return lambda c, v: c.dnc.import_bulk(["a@example.com"], **{name: v})


ENDPOINTS |= {f"import_bulk {field.name}": _import_with(field.name) for field in attrs.fields(ImportOptions)}


# client.request() passes its body and query through as given (an endpoint the SDK does not wrap
# yet): the server's 400 on them is its word on the caller's JSON, not a request the SDK made up.
RAW = {"request params", "request json"}


def _allowed(error: BaseException, *, raw: bool) -> bool:
    return isinstance(error, (SendKitError, TypeError)) and (raw or not isinstance(error, BadRequestError))


@pytest.mark.parametrize("name", ENDPOINTS)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=junk)
async def test_junk_in_any_parameter_is_a_typed_error_sends_nothing_and_nothing_malformed(
    boundary_fake, name, value
) -> None:
    fake, case, raw = boundary_fake, ENDPOINTS[name], name in RAW
    fake.add_conversation("lead@example.com")
    before = fake.stats.requests
    async with SendKit(**_client_kwargs(fake)) as client:
        try:
            await case(client, value)
        except BaseException as error:  # noqa: BLE001 - what escapes is the property under test
            assert _allowed(error, raw=raw), f"{type(error).__name__}: {error}"  # noqa: PT017 - the property
            # A callable on_progress that fails is the caller's own function failing, after the work.
            callback = name == "import_bulk on_progress" and callable(value)
            if isinstance(error, (TypeError, ValidationError, ConfigurationError)) and not callback:
                assert fake.stats.requests == before, "a refused call sent a request"
    assert raw or fake.stats.by_status[400] == 0, "a request the server found malformed was sent"


@pytest.fixture(autouse=True)
def _in_a_scratch_folder(tmp_path, monkeypatch):
    """Junk checkpoint paths are files: they land here, never in the working tree."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def boundary_fake():
    async with FakeSendKit() as fake:
        yield fake


# The constructors users call: name -> call with the junk in that parameter.
def _keyword(make: Callable[..., Any], name: str, **base: Any) -> Callable[[Any], Any]:
    return lambda value: make(**base, **{name: value})


def _with_redis(make: Callable[..., Any]) -> Callable[..., Any]:
    return lambda **settings: make(_redis(), **settings)


CONSTRUCTORS: dict[str, Callable[[Any], Any]] = {
    **{
        f"SendKit {name}": _keyword(SendKit, name, api_key="sk_test_key")
        for name in (
            "api_key",
            "base_url",
            "workspace_id",
            "timeout",
            "max_retries",
            "max_retry_wait",
            "max_queue_wait",
            "session",
            "allow_insecure_http",
            "headers",
            "clock",
            "connection_limit",
            "transport",
            "rate_budget",
            "max_concurrency",
        )
    },
    "Timeout total": _keyword(Timeout, "total"),
    "Timeout connect": _keyword(Timeout, "connect"),
    "RetryPolicy max_retries": _keyword(RetryPolicy, "max_retries"),
    "RetryPolicy backoff_base": _keyword(RetryPolicy, "backoff_base"),
    "RetryPolicy max_queue_wait": _keyword(RetryPolicy, "max_queue_wait"),
    "LocalBudget max_pause": _keyword(LocalBudget, "max_pause"),
    "LocalBudget share": _keyword(LocalBudget, "share"),
    "LocalBudget clock": _keyword(LocalBudget, "clock"),
    "RateCap rate": lambda v: RateCap(LocalBudget(), v, clock=FakeClock()),
    "RateCap capacity": lambda v: RateCap(LocalBudget(), 10, clock=FakeClock(), capacity=v),
    "RateCap inner": lambda v: RateCap(v, 10, clock=FakeClock()),
    "DncEntry email": DncEntry,
    "DncEntry type": _keyword(DncEntry, "type", email="a@example.com"),
    "DncEntry reason": _keyword(DncEntry, "reason", email="a@example.com"),
    "DncEntry.coerce": DncEntry.coerce,
    **{
        f"ImportOptions {name}": _keyword(ImportOptions, name)
        for name in ("batch_size", "max_batch_bytes", "concurrency", "max_rate", "dedupe", "reason", "type")
    },
    "RedisBudget client": RedisBudget,
    **{
        f"RedisBudget {name}": _keyword(_with_redis(RedisBudget), name)
        for name in ("max_pause", "prefix", "timeout", "retry_every", "in_flight_ttl", "keep", "clock")
    },
    "RedisBudget.from_url": RedisBudget.from_url,
    "RedisCheckpoints client": RedisCheckpoints,
    **{
        f"RedisCheckpoints {name}": _keyword(_with_redis(RedisCheckpoints), name)
        for name in ("lease_ttl", "completed_ttl", "idle_ttl", "prefix", "replicas")
    },
    "RedisCheckpoints job": lambda v: RedisCheckpoints(_redis()).job(v),
    **{
        f"FakeSendKit {name}": _keyword(FakeSendKit, name)
        for name in (
            "latency",
            "capacity",
            "queue_limit",
            "list_order",
            "rate_limit",
            "rate_window",
            "limiter",
            "burst",
            "rate_headers",
            "tenant_share",
            "fail_rate",
            "seed",
        )
    },
}


def _redis() -> Any:
    """A Redis client that never connects (its constructor does not): enough to build a store."""
    import redis.asyncio  # noqa: PLC0415 - the optional extra

    return redis.asyncio.Redis(host="127.0.0.1", port=1)


@pytest.mark.parametrize("make", CONSTRUCTORS.values(), ids=CONSTRUCTORS.keys())
@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(value=junk)
def test_junk_given_to_a_constructor_is_a_typed_error(make, value) -> None:
    try:
        made = make(value)
    except BaseException as error:  # noqa: BLE001 - what escapes is the property under test
        assert isinstance(error, (SendKitError, TypeError)), f"{type(error).__name__}: {error}"  # noqa: PT017
    else:
        del made

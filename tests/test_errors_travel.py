"""Every exported error pickles to an equal error, and every exported class has its source."""

from __future__ import annotations

import inspect
import pickle
from datetime import datetime, timezone

import pytest

import sendkit_async
import sendkit_async.budget
import sendkit_async.bulk
import sendkit_async.transport
from sendkit_async import (
    APIConnectionError,
    APIStatusError,
    BudgetTimeoutError,
    RateLimit,
    UnexpectedResponseError,
    ValidationError,
)
from sendkit_async.bulk import JobLeaseHeldError, UnreadableItem
from sendkit_async.bulk._lease import Holder

PUBLIC = [sendkit_async, sendkit_async.bulk, sendkit_async.budget, sendkit_async.transport]
# Each public member once, from every public module (a name re-exported twice is one member).
EXPORTED = list(
    {
        id(member): member
        for module in PUBLIC
        for name in module.__all__
        if not name.startswith("_")
        for member in [getattr(module, name)]
    }.values()
)
CLASSES = [member for member in EXPORTED if isinstance(member, type)]
ERRORS = [member for member in CLASSES if issubclass(member, BaseException)]


def _sample(cls: type[BaseException]) -> BaseException:  # noqa: PLR0911 - one sample per constructor shape
    if issubclass(cls, APIStatusError):
        return cls(
            status=429,
            method="POST",
            path="/v1/dnc/import",
            error="Too Many Requests",
            message="slow down [redacted]",
            code=42,
            request_id="req-1",
            rate_limit=RateLimit(limit=10, remaining=0, reset_after=1.0, observed_at=5.0),
            retry_after=1.0,
            body='{"error": "[redacted]"}',
        )
    if cls is JobLeaseHeldError:
        return cls("job-1", Holder("host-1", 42, datetime.now(timezone.utc), "secret-token"))
    if cls is UnexpectedResponseError:
        return cls("not JSON", status=200, body="<html>")
    if cls is BudgetTimeoutError:
        return cls("waited 5.00s", method="PATCH", path="/v1/inbox/x", waited=5.0, limit=5.0)
    if cls is UnreadableItem:
        return cls("not valid JSON", text="{oops")
    if issubclass(cls, APIConnectionError):
        return cls("POST /v1/dnc/import failed", method="POST", path="/v1/dnc/import")
    return cls("a message")


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_exported_error_pickles_to_an_equal_error(cls) -> None:
    error = _sample(cls)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_exported_class_has_its_source(cls) -> None:
    assert f"class {cls.__name__}" in inspect.getsource(cls)


def test_a_validation_error_is_still_a_value_error_after_the_trip() -> None:
    copy = pickle.loads(pickle.dumps(ValidationError("bad")))  # noqa: S301
    assert isinstance(copy, ValueError)


def test_no_public_wire_type_puts_an_unescaped_string_into_a_body() -> None:
    import orjson  # noqa: PLC0415

    from sendkit_async.dnc import PreparedEntries  # noqa: PLC0415

    for entries in (
        PreparedEntries(['evil@x.com","reason":"complaint']),
        PreparedEntries(["a@x.com"], reasons='import","x":"y'),
        PreparedEntries(["a@x.com"], kinds='email","reason":"bounce'),
        PreparedEntries(["caf\u00e9@x.com", "a\\b@x.com", "a\nb@x.com"]),
    ):
        body = orjson.loads(entries.body())
        assert list(body) == ["entries"]
        assert all(set(entry) == {"email", "type", "reason"} for entry in body["entries"])
        assert [entry["email"] for entry in body["entries"]] == entries.emails


async def test_bad_walk_starts_and_budget_settings_are_typed_errors() -> None:
    from sendkit_async import SendKitError  # noqa: PLC0415
    from sendkit_async.budget import LocalBudget, RateCap, SystemClock  # noqa: PLC0415
    from sendkit_async.testing import FakeSendKit  # noqa: PLC0415

    async with FakeSendKit() as fake, fake.client() as client:
        for kwargs in ({"start": "x", "mode": "page"}, {"start": 0, "mode": "page"}, {"start": 3}):
            with pytest.raises(SendKitError):
                async for _ in client.dnc.list(**kwargs):
                    pass
        assert fake.stats.requests == 0
    for build in (
        lambda: LocalBudget(share=2),
        lambda: LocalBudget(max_pause=-1),
        lambda: RateCap(LocalBudget(), 0, clock=SystemClock()),
    ):
        with pytest.raises(ValidationError):
            build()


async def test_a_429_log_line_says_the_budget_does_the_wait(client, wire, caplog) -> None:
    from .conftest import API  # noqa: PLC0415

    wire.get(f"{API}/v1/dnc?limit=1", status=429, headers={"Retry-After": "2"}, payload={"error": "slow"})
    wire.get(f"{API}/v1/dnc?limit=1", payload={"success": True, "data": [], "pagination": {"total": 0}})
    await client.dnc.get_page(limit=1)
    line = next(r.getMessage() for r in caplog.records if "429" in r.getMessage())
    assert "retrying when the rate budget allows (paused 2.00s)" in line


async def test_one_budget_paces_one_key_a_second_key_is_refused(redis_server) -> None:
    from sendkit_async import ConfigurationError, SendKit  # noqa: PLC0415
    from sendkit_async.budget import LocalBudget, RedisBudget  # noqa: PLC0415

    local = LocalBudget()
    async with RedisBudget.from_url(redis_server.url) as shared:
        for budget in (local, shared):
            SendKit(api_key="sk_live_first_key_0123456789", rate_budget=budget)
            SendKit(api_key="sk_live_first_key_0123456789", rate_budget=budget)  # the same key again: fine
            with pytest.raises(ConfigurationError, match="its own budget") as caught:
                SendKit(api_key="sk_live_second_key_0123456789", rate_budget=budget)
            assert "second_key" not in str(caught.value)


async def test_iter_import_takes_the_retry_settings_of_import_bulk() -> None:
    import contextlib  # noqa: PLC0415

    from sendkit_async.testing import FakeSendKit  # noqa: PLC0415

    async with FakeSendKit(fail_rate=1.0, seed=1) as fake, fake.client() as client:
        results = client.dnc.iter_import(["a@example.com"], max_retries=0, concurrency=1)
        async with contextlib.aclosing(results) as batches:
            outcome = [result async for result in batches]
    assert len(outcome[0].failed) == 1
    assert outcome[0].requests == 1  # no retry: max_retries=0 reached the session


def test_the_drawn_error_tree_names_every_exported_error_under_its_parent():
    """The tree in ``_errors``' docstring is the classes' tree: every exported error, each under its base."""
    import re  # noqa: PLC0415

    import sendkit_async  # noqa: PLC0415
    from sendkit_async import _errors  # noqa: PLC0415

    drawn: dict[str, str | None] = {}
    parents: list[tuple[int, str]] = []
    for line in (_errors.__doc__ or "").splitlines():
        match = re.match(r"^[\s│├└─]*([A-Z]\w+Error)\b", line)
        if not match:
            continue
        depth = match.start(1) // 4  # each level of the drawing is four columns
        name = match.group(1)
        while parents and parents[-1][0] >= depth:
            parents.pop()
        drawn[name] = parents[-1][1] if parents else None
        parents.append((depth, name))
    exported = {
        name: cls
        for module in PUBLIC
        for name in module.__all__
        if isinstance(cls := getattr(module, name), type) and issubclass(cls, sendkit_async.SendKitError)
    }
    assert set(exported) == set(drawn)
    for name, cls in exported.items():
        parent = drawn[name]
        bases = {base.__name__ for base in cls.__bases__}
        assert (parent is None and cls is sendkit_async.SendKitError) or parent in bases, (
            name,
            parent,
            bases,
        )

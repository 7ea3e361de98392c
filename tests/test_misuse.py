"""Client misuse gets a clear typed error: after aclose, from another event loop, never closed."""

from __future__ import annotations

import asyncio
import gc
import inspect
import pydoc
import subprocess
import sys
import warnings

import pytest

from sendkit_async import ClientClosedError, ClientLoopError, SendKit, dnc, inbox
from sendkit_async.testing import FakeSendKit, MockTransport, json_response

from .conftest import KEY
from .test_streams import LOOPS

PAGE = {"success": True, "data": [], "pagination": {"total": 0, "page": 1, "limit": 1, "pages": 0}}


def _mock() -> MockTransport:
    return MockTransport(lambda _request: json_response(200, PAGE))


@pytest.mark.parametrize("loop_name", LOOPS)
def test_every_call_and_stream_after_aclose_raises_client_closed(loop_name) -> None:
    async def main() -> None:
        client = SendKit(api_key=KEY, transport=_mock())
        await client.dnc.get_page()
        await client.aclose()
        await client.aclose()  # idempotent
        assert client.closed
        with pytest.raises(ClientClosedError, match="closed"):
            await client.dnc.get_page()
        with pytest.raises(ClientClosedError):
            await client.inbox.mark_read(["664a1b2c3d4e5f6a7b8c9d0e"])
        with pytest.raises(ClientClosedError):
            async for _ in client.dnc.list():
                pass
        with pytest.raises(ClientClosedError):
            await client.dnc.import_bulk(["a@example.com"])
        with pytest.raises(ClientClosedError):
            async with client:
                pass

    LOOPS[loop_name](main())


@pytest.mark.parametrize("second", LOOPS)
@pytest.mark.parametrize("first", LOOPS)
def test_a_client_opened_in_one_event_loop_refuses_another_with_a_typed_error(first, second) -> None:
    client = SendKit(api_key=KEY, transport=_mock())

    async def use() -> None:
        await client.dnc.get_page()

    LOOPS[first](use())
    with pytest.raises(ClientLoopError, match="one client per event loop"):
        LOOPS[second](use())

    async def close() -> None:  # its loop is closed: closing it elsewhere is allowed, and quiet
        await client.aclose()

    LOOPS[second](close())
    assert client.closed


def test_a_module_level_client_in_pytest_asyncios_per_test_loops_fails_with_the_typed_error(tmp_path) -> None:
    (tmp_path / "test_module_client.py").write_text(
        "import pytest\n"
        "from sendkit_async import SendKit\n"
        "from sendkit_async.testing import MockTransport, json_response\n"
        "PAGE = {'success': True, 'data': [], 'pagination': {'total': 0}}\n"
        "wire = MockTransport(lambda r: json_response(200, PAGE))\n"
        "client = SendKit(api_key='sk_test_key', transport=wire)\n"
        "@pytest.mark.asyncio\n"
        "async def test_one():\n"
        "    await client.dnc.get_page()\n"
        "@pytest.mark.asyncio\n"
        "async def test_two():\n"
        "    await client.dnc.get_page()\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::ResourceWarning"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr
    assert "ClientLoopError" in result.stdout
    assert "one client per event loop" in result.stdout


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_client_never_closed_warns_naming_async_with(loop_name) -> None:
    async def main() -> None:
        async with FakeSendKit() as fake:
            client = fake.client()
            await client.dnc.get_page()
            pool = client.session.scope.wire  # to release after the warning, so aiohttp's own stays quiet
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                del client
                gc.collect()
            await pool.aclose()
            ours = [w for w in caught if "SendKit" in str(w.message)]
            assert len(ours) == 1
            assert ours[0].category is ResourceWarning
            assert "async with SendKit(...) as client" in str(ours[0].message)

    LOOPS[loop_name](main())


def test_a_client_never_used_holds_nothing_and_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = SendKit(api_key=KEY)
        del client
        gc.collect()


@pytest.mark.parametrize(
    ("resource", "name", "function"),
    [
        ("dnc", "import_entries", dnc.import_entries),
        ("dnc", "get_page", dnc.get_page),
        ("dnc", "pages", dnc.iter_pages),
        ("dnc", "list", dnc.iter_entries),
        ("inbox", "add_leads_to_dnc", inbox.add_leads_to_dnc),
        ("inbox", "mark_read", inbox.mark_read),
        ("inbox", "update", inbox.update),
    ],
)
def test_help_and_signature_of_a_bound_endpoint_are_the_endpoints_own(resource, name, function) -> None:
    client = SendKit(api_key=KEY)
    bound = getattr(getattr(client, resource), name)
    own = list(inspect.signature(function).parameters.values())[1:]  # all but the session
    assert list(inspect.signature(bound).parameters.values()) == own
    assert bound.__doc__ == function.__doc__
    text = pydoc.render_doc(bound)
    assert function.__doc__.splitlines()[0] in text
    assert "partial" not in text
    assert inspect.iscoroutinefunction(bound) == inspect.iscoroutinefunction(function)


async def test_a_with_options_copy_shares_the_loop_rule_and_never_warns() -> None:
    async with SendKit(api_key=KEY, transport=_mock()) as client:
        copy = client.with_options(timeout=None, max_retries=0)
        await copy.dnc.get_page()
        del copy
        gc.collect()
    assert asyncio.get_running_loop()

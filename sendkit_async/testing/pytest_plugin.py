"""Pytest fixtures around the fake server (``pip install 'sendkit-async[testing]'``).

Load it from your ``conftest.py``::

    pytest_plugins = ["sendkit_async.testing.pytest_plugin"]

then ask for ``fake_sendkit`` (a running :class:`FakeSendKit`) or
``sendkit_client`` (a :class:`~sendkit_async.SendKit` pointed at it). An
``async def`` test that asks for either runs on asyncio without further
setup: no ``asyncio_mode`` setting and no marker needed. The one
pytest-asyncio setting to make is ``asyncio_default_fixture_loop_scope =
"function"`` (unset, pytest-asyncio warns at every run).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sendkit_async.client import SendKit

from ._server import FakeSendKit

__all__ = ["fake_sendkit", "sendkit_client"]

_FIXTURES = frozenset({"fake_sendkit", "sendkit_client"})


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Mark ``async def`` tests that take these fixtures as asyncio tests, before pytest-asyncio looks.

    So they run whatever the asyncio mode (strict by default), with no marker
    of the user's. Collection itself is left to pytest.
    """
    del collector, name
    if not inspect.iscoroutinefunction(obj):
        return
    try:
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    marks = getattr(obj, "pytestmark", [])
    if _FIXTURES.intersection(parameters) and not any(mark.name == "asyncio" for mark in marks):
        pytest.mark.asyncio(obj)


@pytest_asyncio.fixture
async def fake_sendkit() -> AsyncIterator[FakeSendKit]:
    """A fake SendKit server on a free loopback port, stopped after the test."""
    async with FakeSendKit(seed=0) as fake:
        yield fake


@pytest_asyncio.fixture
async def sendkit_client(fake_sendkit: FakeSendKit) -> AsyncIterator[SendKit]:
    """A client for ``fake_sendkit``, closed after the test."""
    async with fake_sendkit.client() as client:
        yield client

"""Pytest fixtures around the fake server (needs pytest-asyncio).

Load it from your ``conftest.py``::

    pytest_plugins = ["sendkit_async.testing.pytest_plugin"]

then ask for ``fake_sendkit`` (a running :class:`FakeSendKit`) or
``sendkit_client`` (a :class:`~sendkit_async.SendKit` pointed at it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from sendkit_async.client import SendKit

from ._server import FakeSendKit

__all__ = ["fake_sendkit", "sendkit_client"]


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

"""A fake SendKit server and test helpers, for this project's tests and yours.

In-process::

    from sendkit_async.testing import FakeSendKit

    async with FakeSendKit(latency=0.01, rate_limit=50, seed=1) as fake:  # the edge's knobs
        async with fake.client() as client:
            await client.dnc.import_entries(["a@example.com"])
        assert fake.dnc_emails() == {"a@example.com"}

As pytest fixtures: add ``pytest_plugins = ["sendkit_async.testing.pytest_plugin"]``
to your ``conftest.py`` and take ``fake_sendkit`` or ``sendkit_client``.

As a command: ``python -m sendkit_async.testing --port 8080``.

Without a server: ``SendKit(transport=MockTransport(handler))`` answers every
attempt from ``handler(request)``.

In virtual time: :class:`VirtualTimeLoop` is an asyncio loop whose clock jumps
to the next timer whenever nothing can run; give its :attr:`~VirtualTimeLoop.clock`
to the client and the fake, and a paced job of minutes runs in milliseconds,
the same way every time in process (``run_in_virtual_time(main)``).
"""

from __future__ import annotations

from ._clock import FakeClock
from ._edge import Edge, ServerStats
from ._mock import MockTransport, json_response
from ._server import DEFAULT_PLATFORM_KEY, DEFAULT_WORKSPACE_ID, DEFAULT_WORKSPACE_KEY, FakeSendKit
from ._store import FakeConversation
from ._virtual import LoopClock, VirtualTimeLoop, run_in_virtual_time, virtual_clock

__all__ = [
    "DEFAULT_PLATFORM_KEY",
    "DEFAULT_WORKSPACE_ID",
    "DEFAULT_WORKSPACE_KEY",
    "Edge",
    "FakeClock",
    "FakeConversation",
    "FakeSendKit",
    "LoopClock",
    "MockTransport",
    "ServerStats",
    "VirtualTimeLoop",
    "json_response",
    "run_in_virtual_time",
    "virtual_clock",
]

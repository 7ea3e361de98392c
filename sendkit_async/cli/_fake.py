"""``sendkit-async fake-server``: the fake SendKit server's own click command, under the CLI."""

from __future__ import annotations

from sendkit_async.testing.__main__ import fake_server

__all__ = ["fake_server"]

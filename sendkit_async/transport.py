"""The wire under the session: one HTTP exchange per ``send``, replaceable.

``SendKit(transport=...)`` takes any :class:`AsyncTransport`: the default
is :class:`AiohttpTransport`; :class:`sendkit_async.testing.MockTransport`
answers from a function. Retries, pacing and error mapping stay in the
session above it.
"""

from __future__ import annotations

from ._transport import AiohttpTransport, AsyncTransport, WireRequest, WireResponse

__all__ = ["AiohttpTransport", "AsyncTransport", "WireRequest", "WireResponse"]

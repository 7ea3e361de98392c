"""The pacing matrix: the limiter shapes and header spellings a budget must pace right under.

Each :class:`Cell` is one server family's convention; the conformance tests run
them in virtual time, the pacing benchmark against the fake server in its own
process (:meth:`Cell.server_args`), and your own tests may run your code
against any of them (:meth:`Cell.fake_options` for :class:`FakeSendKit`).
"""

from __future__ import annotations

from typing import Any

import attrs

from ._limits import LimiterShape, Spelling

__all__ = ["BLIND", "CELLS", "DIALECTS", "Cell"]


@attrs.frozen
class Cell:
    """One limiter shape, spelled one way.

    Attributes:
        name: what a table calls it.
        shape: the limiter (see :func:`~sendkit_async.testing._limits.make_limiter`).
        spelling: how its answers write it.
        burst: a token bucket's capacity.
        tenant_share: the share of the key another tenant spends.
        extra_windows: more fixed windows every request must pass, as ``(limit, seconds)``.
    """

    name: str
    shape: LimiterShape
    spelling: Spelling = attrs.field(factory=Spelling)
    burst: int = 1
    tenant_share: float = 0.0
    extra_windows: tuple[tuple[int, float], ...] = ()

    def fake_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~sendkit_async.testing.FakeSendKit` (with your ``rate_limit``)."""
        spelling = self.spelling
        return {
            "limiter": self.shape,
            "burst": self.burst,
            "tenant_share": self.tenant_share,
            "rate_headers": spelling.style,
            "reset_style": spelling.reset,
            "limit_meaning": spelling.limit,
            "retry_after_style": spelling.retry_after,
            "refusal_status": spelling.status,
            "policy_in_body": spelling.policy_in_body,
            "extra_windows": self.extra_windows,
            "clock_offset": spelling.clock_offset,
        }

    def server_args(self) -> list[str]:
        """The same, as options of ``python -m sendkit_async.testing``."""
        options = self.fake_options()
        return [
            *("--limiter", options["limiter"], "--burst", str(options["burst"])),
            *("--tenant-share", str(options["tenant_share"]), "--rate-headers", options["rate_headers"]),
            *("--reset-style", options["reset_style"], "--limit-meaning", options["limit_meaning"]),
            *("--retry-after", options["retry_after_style"], "--clock-offset", str(options["clock_offset"])),
            *("--refusal-status", str(options["refusal_status"])),
            *(["--policy-in-body"] if options["policy_in_body"] else []),
            *(
                arg
                for count, seconds in self.extra_windows
                for arg in ("--extra-window", f"{count}/{seconds:g}")
            ),
        ]


S = Spelling
CELLS = [
    Cell("fixed window aligned to the clock, reset = whole epoch second", "fixed", S(reset="epoch")),
    Cell("same, reset = whole seconds from now", "fixed", S(reset="seconds")),
    Cell(
        "fixed window anchored at the first request, IETF RateLimit-* + Policy", "anchored", S("ietf-fields")
    ),
    Cell("fixed, epoch reset, server clock 0.4 s ahead", "fixed", S(reset="epoch", clock_offset=0.4)),
    Cell("fixed, epoch reset, server clock 0.4 s behind", "fixed", S(reset="epoch", clock_offset=-0.4)),
    Cell("fixed, epoch reset, server clock 2 s ahead", "fixed", S(reset="epoch", clock_offset=2.0)),
    Cell("fixed, epoch reset, server clock 2 s behind", "fixed", S(reset="epoch", clock_offset=-2.0)),
    Cell("sliding log, reset = whole seconds from now", "sliding", S(reset="seconds")),
    Cell("sliding-window counter, reset = whole seconds from now", "counter", S(reset="seconds")),
    Cell("token bucket burst 1, Limit: 10, reset = whole epoch second", "token", S(reset="epoch")),
    Cell("token bucket burst 1, reset = whole seconds from now", "token", S(reset="seconds")),
    Cell("token bucket burst 5, IETF RateLimit-* + Policy", "token", S("ietf-fields"), burst=5),
    Cell("token bucket burst 5, structured IETF RateLimit", "token", S("ietf"), burst=5),
    Cell("token bucket burst 1, Limit = burst, fractional reset", "token", S(limit="burst")),
    Cell("fixed window, fractional reset", "fixed", S()),
    Cell("fixed window, reset = epoch milliseconds", "fixed", S(reset="epoch-ms")),
    Cell("fixed window, Retry-After as an HTTP date", "fixed", S(reset="seconds", retry_after="date")),
    Cell("fixed, epoch reset, another tenant spends half", "fixed", S(reset="epoch"), tenant_share=0.5),
]
# No rate-limit fields at all: only Retry-After on a 429, so the rate is learned from refusals alone.
BLIND = Cell("fixed, no rate-limit headers (only Retry-After on 429)", "fixed", S("none"))
# The vendors' dialects: what the field's own APIs send beside (or instead of) the conventions above.
DIALECTS = [
    Cell("lemlist: X-RateLimit-Reset as a JavaScript date", "fixed", S(reset="js-date")),
    Cell("X-RateLimit-Reset as an HTTP date", "fixed", S(reset="http-date")),
    Cell(
        "Smartlead: no fields, the wait in the body (error.retry_after)",
        "fixed",
        S("none", retry_after="body"),
    ),
    Cell(
        "HubSpot: X-RateLimit-*, the policy named in the 429 body",
        "fixed",
        S(reset="seconds", policy_in_body=True),
    ),
    Cell("Mailchimp: a bare 403 throttle, no fields", "fixed", S("none", retry_after="none", status=403)),
    Cell("a limiter's 503 with Retry-After, no fields", "fixed", S("none", status=503)),
    Cell(
        "Kong/Apollo: per second and per minute at once",
        "fixed",
        S("kong"),
        extra_windows=((540, 60.0),),
    ),
]

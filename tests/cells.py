"""The pacing matrix: every limiter shape and header spelling the budget must pace right under.

Shared by the conformance tests (virtual time) and the pacing benchmark (the
fake server in its own process), so both run the same cells.
"""

from __future__ import annotations

import attrs

from sendkit_async.testing._limits import LimiterShape, Spelling


@attrs.frozen
class Cell:
    name: str
    shape: LimiterShape
    spelling: Spelling
    burst: int = 1
    tenant_share: float = 0.0


S = Spelling
CELLS = [
    Cell("fixed window, reset = whole epoch second", "fixed", S(reset="epoch")),
    Cell("fixed window, reset = whole seconds from now", "fixed", S(reset="seconds")),
    Cell(
        "fixed window anchored at the first request, IETF RateLimit-* + Policy",
        "anchored",
        S("ietf-fields", "seconds"),
    ),
    Cell("fixed, epoch reset, server clock 0.4 s ahead", "fixed", S(reset="epoch", clock_offset=0.4)),
    Cell("fixed, epoch reset, server clock 0.4 s behind", "fixed", S(reset="epoch", clock_offset=-0.4)),
    Cell("fixed, epoch reset, server clock 2 s ahead", "fixed", S(reset="epoch", clock_offset=2.0)),
    Cell("fixed, epoch reset, server clock 2 s behind", "fixed", S(reset="epoch", clock_offset=-2.0)),
    Cell("sliding log, reset = whole seconds from now", "sliding", S(reset="seconds")),
    Cell("sliding-window counter, reset = whole seconds from now", "counter", S(reset="seconds")),
    Cell("token bucket burst 1, Limit = quota, reset = whole epoch second", "token", S(reset="epoch")),
    Cell("token bucket burst 1, reset = whole seconds from now", "token", S(reset="seconds")),
    Cell("token bucket burst 5, IETF fields", "token", S("ietf-fields", "seconds"), burst=5),
    Cell("token bucket burst 5, structured IETF RateLimit", "token", S("ietf"), burst=5),
    Cell("token bucket burst 1, Limit = burst, fractional reset", "token", S(limit="burst")),
    Cell("fixed window, fractional reset", "fixed", S()),
    Cell("fixed window, reset = epoch milliseconds", "fixed", S(reset="epoch-ms")),
    Cell("fixed window, Retry-After as an HTTP date", "fixed", S(reset="seconds", retry_after="date")),
    Cell("fixed, epoch reset, another tenant spends half", "fixed", S(reset="epoch"), tenant_share=0.5),
]

# No rate-limit fields at all: learned from 429s alone (its own, looser test: see the README).
BLIND = Cell("fixed, no rate-limit headers (only Retry-After on 429)", "fixed", S("none"))

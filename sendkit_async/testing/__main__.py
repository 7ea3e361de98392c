"""Run the fake SendKit server in the foreground: ``python -m sendkit_async.testing``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from ._limits import HEADER_STYLES, LIMITER_SHAPES, RESET_STYLES
from ._server import DEFAULT_PLATFORM_KEY, DEFAULT_WORKSPACE_ID, DEFAULT_WORKSPACE_KEY, FakeSendKit


def _parser(prog: str = "python -m sendkit_async.testing") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--latency-per-entry-us", type=float, default=0.0, help="added per imported entry")
    parser.add_argument(
        "--capacity", type=int, default=None, help="requests served at once; the rest queue (default: any)"
    )
    parser.add_argument(
        "--queue-limit",
        type=int,
        default=None,
        help="with --capacity: 503 + Retry-After past this many queued",
    )
    parser.add_argument(
        "--list-order", choices=["oldest", "newest"], default="oldest", help="the DNC list's order"
    )
    parser.add_argument(
        "--dnc-entries", type=int, default=0, help="seed the DNC list with this many addresses"
    )
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per window per key")
    parser.add_argument("--rate-window", type=float, default=1.0, help="window length in seconds")
    parser.add_argument(
        "--limiter",
        choices=LIMITER_SHAPES,
        default="fixed",
        help="fixed window aligned to the clock, anchored at the first request, sliding log, "
        "sliding counter, or token bucket",
    )
    parser.add_argument("--burst", type=int, default=1, help="a token bucket's capacity")
    parser.add_argument(
        "--rate-headers",
        choices=HEADER_STYLES,
        default="x",
        help="X-RateLimit-* fields, the structured IETF RateLimit field, the IETF RateLimit-* fields, "
        "or none (only Retry-After on 429)",
    )
    parser.add_argument(
        "--reset-style",
        choices=RESET_STYLES,
        default="delta",
        help="the reset as fractional seconds from now, whole seconds from now, a whole epoch second, "
        "or epoch milliseconds",
    )
    parser.add_argument(
        "--limit-meaning",
        choices=["quota", "burst"],
        default="quota",
        help="the Limit field as requests per window or as a token bucket's capacity",
    )
    parser.add_argument(
        "--retry-after", choices=["seconds", "date"], default="seconds", help="Retry-After's form"
    )
    parser.add_argument(
        "--clock-offset", type=float, default=0.0, help="seconds the server's clock runs ahead (or behind)"
    )
    parser.add_argument(
        "--tenant-share", type=float, default=0.0, help="share of the rate a phantom neighbour spends"
    )
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of injected 5xx answers")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped connections")
    parser.add_argument("--seed", type=int, default=None, help="repeatable faults")
    parser.add_argument(
        "--conversations",
        type=int,
        default=0,
        help="seed this many unread conversations (their ids are printed) to try the inbox commands on",
    )
    return parser


async def serve(args: argparse.Namespace) -> None:
    """Start the server, print where it listens and its keys, and run until cancelled."""
    fake = FakeSendKit(
        host=args.host,
        port=args.port,
        latency=args.latency_ms / 1000,
        latency_per_entry=args.latency_per_entry_us / 1e6,
        capacity=args.capacity,
        queue_limit=args.queue_limit,
        list_order=args.list_order,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        limiter=args.limiter,
        burst=args.burst,
        rate_headers=args.rate_headers,
        reset_style=args.reset_style,
        limit_meaning=args.limit_meaning,
        retry_after_style=args.retry_after,
        clock_offset=args.clock_offset,
        tenant_share=args.tenant_share,
        fail_rate=args.fail_rate,
        drop_rate=args.drop_rate,
        seed=args.seed,
    )
    fake.add_dnc(f"seeded{number}@example.com" for number in range(args.dnc_entries))
    async with fake:
        # The keys are fake and exist only in this process: printing them is the point.
        print(f"fake SendKit listening on {fake.url}", flush=True)  # noqa: T201
        print(f"  workspace key: {DEFAULT_WORKSPACE_KEY} ({DEFAULT_WORKSPACE_ID})", flush=True)  # noqa: T201
        print(f"  platform key:  {DEFAULT_PLATFORM_KEY} (X-Workspace-Id needed)", flush=True)  # noqa: T201
        for number in range(args.conversations):
            conversation = fake.add_conversation(f"lead{number}@example.com", campaign_id="campaign-1")
            print(f"  conversation:  {conversation}", flush=True)  # noqa: T201
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m sendkit_async.testing") -> int:
    """Entry point (also behind ``sendkit-async fake-server``, with the same options)."""
    args = _parser(prog).parse_args(argv)
    # Batches are validated on a worker thread; a short switch interval lets the
    # loop thread take the GIL back within a millisecond, so the rate limiter
    # decides on arrival, as a real edge would (this process is the server's alone).
    sys.setswitchinterval(0.001)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

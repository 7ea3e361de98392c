"""Run the fake SendKit server in the foreground: ``python -m sendkit_async.testing``.

The same click command is ``sendkit-async fake-server``: one set of options for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

try:
    import click
except ImportError:  # pragma: no cover - the testing extra installs it
    sys.exit("python -m sendkit_async.testing needs click: pip install 'sendkit-async[testing]'")

from ._limits import (
    HEADER_STYLES,
    LIMITER_SHAPES,
    REFUSAL_STATUSES,
    RESET_STYLES,
    RETRY_AFTER_STYLES,
    RetryAfterStyle,
)
from ._server import DEFAULT_PLATFORM_KEY, DEFAULT_WORKSPACE_ID, DEFAULT_WORKSPACE_KEY, FakeSendKit

__all__ = ["fake_server", "main"]


def _window(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[tuple[int, float]]:
    """``LIMIT/SECONDS`` texts as pairs."""
    windows = []
    for text in values:
        limit, _, seconds = text.partition("/")
        try:
            windows.append((int(limit), float(seconds)))
        except ValueError:
            raise click.BadParameter(
                f"expected LIMIT/SECONDS such as 300/60, got {text!r}", param=param
            ) from None
    return windows


_COUNT = click.IntRange(min=0)
_SHARE = click.FloatRange(0.0, 1.0)


@click.command("fake-server", context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--host", default="127.0.0.1", help="interface to bind (the default is loopback only)")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, help="port (0 picks a free one)")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, help="added to every request")
@click.option(
    "--latency-per-entry-us", type=click.FloatRange(min=0), default=0.0, help="added per imported entry"
)
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=None,
    show_default="any",
    help="requests served at once; the rest queue",
)
@click.option(
    "--queue-limit",
    type=_COUNT,
    default=None,
    help="with --capacity: 503 + Retry-After past this many queued",
)
@click.option(
    "--list-order", type=click.Choice(["oldest", "newest"]), default="oldest", help="the DNC list's order"
)
@click.option("--dnc-entries", type=_COUNT, default=0, help="seed the DNC list with this many addresses")
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    show_default="none enforced; the fields describe 100,000",
    help="requests per window per key (every answer carries rate-limit fields, as the real API's do)",
)
@click.option(
    "--rate-window", type=click.FloatRange(min=0, min_open=True), default=1.0, help="window length in seconds"
)
@click.option(
    "--limiter",
    type=click.Choice(LIMITER_SHAPES),
    default="fixed",
    help="fixed window aligned to the clock, anchored at the first request, sliding log, "
    "sliding counter, or token bucket",
)
@click.option("--burst", type=click.IntRange(min=1), default=1, help="a token bucket's capacity")
@click.option(
    "--rate-headers",
    type=click.Choice(HEADER_STYLES),
    default="x",
    help="X-RateLimit-* fields, the structured IETF RateLimit field, the IETF RateLimit-* fields, "
    "Kong's per-window fields, or none (only Retry-After on a refusal)",
)
@click.option(
    "--reset-style",
    type=click.Choice(RESET_STYLES),
    default="delta",
    help="the reset as fractional seconds from now, whole seconds from now, a whole epoch second, "
    "epoch milliseconds, a JavaScript date string or an HTTP date",
)
@click.option(
    "--limit-meaning",
    type=click.Choice(["quota", "burst"]),
    default="quota",
    help="the Limit field as requests per window or as a token bucket's capacity",
)
@click.option(
    "--retry-after",
    type=click.Choice(RETRY_AFTER_STYLES),
    default="seconds",
    help="Retry-After in seconds or as an HTTP date, the wait in the refusal's body, or none",
)
@click.option(
    "--refusal-status",
    type=click.Choice([str(status) for status in REFUSAL_STATUSES]),
    default="429",
    help="what a request past the limit gets (503: nginx's default; 403: a throttling 403)",
)
@click.option("--policy-in-body", is_flag=True, help="a refusal's body names its policy (policyName)")
@click.option(
    "--extra-window",
    multiple=True,
    metavar="LIMIT/SECONDS",
    callback=_window,
    show_default="none",
    help="another fixed window every request must pass, e.g. 300/60 (repeatable)",
)
@click.option(
    "--clock-offset", type=float, default=0.0, help="seconds the server's clock runs ahead (or behind)"
)
@click.option("--tenant-share", type=_SHARE, default=0.0, help="share of the rate a phantom neighbour spends")
@click.option("--fail-rate", type=_SHARE, default=0.0, help="share of injected 5xx answers")
@click.option("--drop-rate", type=_SHARE, default=0.0, help="share of dropped connections")
@click.option(
    "--seed", type=int, default=None, show_default="random", help="makes the injected faults repeatable"
)
@click.option(
    "--conversations",
    type=_COUNT,
    default=0,
    help="seed this many unread conversations (their ids are printed) to try the inbox commands on",
)
def fake_server(**options: Any) -> None:
    """Run the bundled fake SendKit server in the foreground (Ctrl-C stops it).

    It prints the URL it listens on and its keys (fake, and only in this
    process), then serves the five endpoints with the limiter, latency and
    faults the options ask for.
    """
    # Batches are validated on a worker thread; a short switch interval lets the
    # loop thread take the GIL back within a millisecond, so the rate limiter
    # decides on arrival, as a real edge would (this process is the server's alone).
    sys.setswitchinterval(0.001)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(**options))


async def _serve(
    *,
    latency_ms: float,
    latency_per_entry_us: float,
    retry_after: RetryAfterStyle,
    refusal_status: str,
    extra_window: list[tuple[int, float]],
    dnc_entries: int,
    conversations: int,
    **options: Any,
) -> None:
    """Start the server, print where it listens and its keys, and run until cancelled."""
    fake = FakeSendKit(
        latency=latency_ms / 1000,
        latency_per_entry=latency_per_entry_us / 1e6,
        retry_after_style=retry_after,
        refusal_status=int(refusal_status),
        extra_windows=extra_window,
        **options,
    )
    fake.add_dnc(f"seeded{number}@example.com" for number in range(dnc_entries))
    async with fake:
        # The keys are fake and exist only in this process: printing them is the point.
        click.echo(f"fake SendKit listening on {fake.url}")
        click.echo(f"  workspace key: {DEFAULT_WORKSPACE_KEY} ({DEFAULT_WORKSPACE_ID})")
        click.echo(f"  platform key:  {DEFAULT_PLATFORM_KEY} (X-Workspace-Id needed)")
        for number in range(conversations):
            conversation = fake.add_conversation(f"lead{number}@example.com", campaign_id="campaign-1")
            click.echo(f"  conversation:  {conversation}")
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """``python -m sendkit_async.testing``: the command, standalone (it exits with its status)."""
    fake_server.main(
        args=list(argv) if argv is not None else None, prog_name="python -m sendkit_async.testing"
    )


if __name__ == "__main__":
    main()

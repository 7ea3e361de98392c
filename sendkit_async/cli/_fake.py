"""``sendkit-async fake-server``: the fake SendKit server, with the options of its own command line."""

from __future__ import annotations

import sys

import click

__all__ = ["fake_server"]


@click.command(
    "fake-server",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def fake_server(arguments: tuple[str, ...]) -> None:
    """Run the bundled fake SendKit server in the foreground (Ctrl-C stops it); --help lists its options.

    The options are those of ``python -m sendkit_async.testing``, one set for both.
    """
    from sendkit_async.testing.__main__ import main as serve  # noqa: PLC0415 - only this command needs it

    sys.exit(serve(list(arguments), prog="sendkit-async fake-server"))

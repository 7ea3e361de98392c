"""The ``sendkit-async`` command line (install with ``pip install 'sendkit-async[cli]'``)."""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the ``sendkit-async`` script."""
    try:
        from ._app import cli  # noqa: PLC0415 - click and rich are an optional extra
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        sys.stderr.write(f"the command line needs its extra: pip install 'sendkit-async[cli]' ({exc})\n")
        sys.exit(2)
    cli()


__all__ = ["main"]

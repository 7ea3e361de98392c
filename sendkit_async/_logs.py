"""``SENDKIT_LOG=info`` (or ``debug``) turns on the SDK's logs without code, on stderr.

Like ``OPENAI_LOG`` and ``STRIPE_LOG``: at ``info`` one line per HTTP attempt
(method, path, status, attempt, time, request id), retries and the rate
budget's pauses; ``debug`` adds more. The API key is never in them. Without the
variable the SDK only writes to the ``sendkit_async`` logger, like any library,
and your own logging setup decides.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Final

__all__ = ["ENV_LOG", "configure_from_environment", "logger"]

ENV_LOG: Final = "SENDKIT_LOG"
_LEVELS: Final = {"info": logging.INFO, "debug": logging.DEBUG}

logger = logging.getLogger("sendkit_async")


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler the environment switch installs (one, however many clients are made)."""


def configure_from_environment() -> None:
    """Install the stderr handler if ``SENDKIT_LOG`` asks for one and none is installed yet."""
    level = _LEVELS.get(os.environ.get(ENV_LOG, "").strip().lower())
    if level is None:
        return
    logger.setLevel(level)
    if not any(isinstance(handler, _Handler) for handler in logger.handlers):
        handler = _Handler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s sendkit_async %(levelname)s %(message)s"))
        logger.addHandler(handler)

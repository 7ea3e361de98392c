"""Names that need an optional extra: imported on first use, with a hint that names the extra."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["from_redis_extra"]


def from_redis_extra(module: str, name: str) -> Any:
    """``module.name``, imported now (a module ``__getattr__`` calls this for a lazy public name).

    Raises:
        ImportError: the ``redis`` extra is not installed; the message says how to install it.
    """
    try:
        found = importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{name} needs the redis extra: pip install 'sendkit-async[redis]'") from exc
    return getattr(found, name)

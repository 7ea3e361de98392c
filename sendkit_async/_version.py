"""The installed distribution's version, for ``__version__`` and the User-Agent."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["VERSION"]

try:
    VERSION = version("sendkit-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0.0.0"

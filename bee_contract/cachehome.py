"""The user's folder for bee's caches, one rule for both stages."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def user_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_CACHE_HOME/bee`, else `~/.cache/bee`; a relative `XDG_CACHE_HOME` is ignored,
    as the XDG spec says."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "bee"


__all__ = ["user_cache_dir"]

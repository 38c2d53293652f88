"""Where bee keeps its per-build-id caches: `$XDG_CACHE_HOME/bee`, else `~/.cache/bee`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """bee's cache folder; a relative `XDG_CACHE_HOME` is ignored, as the spec says."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "bee"

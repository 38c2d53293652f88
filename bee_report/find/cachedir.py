"""Where bee keeps its per-build-id caches (`$XDG_CACHE_HOME/bee`, else `~/.cache/bee`),
and the key that ties a cache entry to the file it was built from.

A build-id is an identifier, not a proof: anyone can give a file any build-id. A table
built from one file must never answer for another (an untrusted `--symbols` folder would
otherwise poison later reports), so every cache entry derived from files is keyed by
:func:`source_key` as well as by build-id.
"""

from __future__ import annotations

import os
from pathlib import Path

try:  # CPython's own BLAKE2: importing hashlib loads OpenSSL, 3 ms of every report's start
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - an interpreter without it
    from hashlib import blake2b


def source_key(*paths: Path | None) -> str | None:
    """16 hex digits naming the exact files ``paths`` (device, inode, size, modification
    time and change time of each); None when one cannot be examined.

    A changed, replaced or different file gives another key, so its cache entry is not
    found and is built anew from the file itself.
    """
    h = blake2b(digest_size=8)
    for path in paths:
        if path is None:
            h.update(b"-;")
            continue
        try:
            st = os.stat(path)
        except OSError:
            return None
        h.update(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns};"
                 .encode())
    return h.hexdigest()

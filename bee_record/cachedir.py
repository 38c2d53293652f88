"""Where `bee record` keeps what it can reuse between launches, and the rules of that folder.

Two caches live side by side: `unwind/` (unwind tables per build-id, `bee_record.unwind.table`)
and `bpf/` (bcc's compiled BPF program, `bee_record.bpf_load`). The root is
`/var/cache/bee` for root (`$XDG_CACHE_HOME/bee`, else `~/.cache/bee`, for other users);
`$BEE_RECORD_CACHE_DIR` replaces it (tests, benchmarks, read-only hosts).

One set of rules for every entry: folders are created 0700; an entry is used only when it
is a regular file (not a link, FIFO or device) owned by the user running bee, not readable
or writable by others, in a folder owned by that user that others cannot write, and no
larger than its kind's bound. Entries are written atomically (0600). Anything else is a
miss: the caller builds anew, never fails because of the cache.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from bee_contract.atomic import write_atomic
from bee_contract.cachehome import user_cache_dir
from bee_contract.errors import BeeError
from bee_contract.safeopen import open_regular

#: Environment variable that replaces the cache root.
ENV = "BEE_RECORD_CACHE_DIR"


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cache (`unwind`, `bpf`) under the root."""
    override = os.environ.get(ENV, "")
    if override and os.path.isabs(override):
        return Path(override) / kind
    if os.geteuid() == 0:
        return Path("/var/cache/bee") / kind
    return user_cache_dir() / kind


def _trusted(st: os.stat_result, folder: bool) -> bool:
    """Owned by us; others can write nothing (a folder) or nothing at all (an entry)."""
    if st.st_uid != os.geteuid():
        return False
    if folder:
        return stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o022
    return stat.S_ISREG(st.st_mode) and not st.st_mode & 0o077


def why_unusable(path: Path, max_bytes: int) -> str | None:
    """Why the entry at `path` cannot be used (None when it passes every rule but size)."""
    try:
        if not _trusted(os.lstat(path.parent), folder=True):
            return f"{path.parent}: not a folder of this user closed to others"
        st = os.lstat(path)
    except FileNotFoundError:
        return "no entry"
    except OSError as exc:
        return exc.strerror or str(exc)
    if not _trusted(st, folder=False):
        return "not a regular file of this user closed to others"
    if st.st_size > max_bytes:
        return f"larger than {max_bytes} bytes"
    return None


def read_entry(path: Path, max_bytes: int) -> bytes | None:
    """The bytes of a cache entry that follows the folder's rules, else None."""
    if why_unusable(path, max_bytes) is not None:
        return None
    try:
        with open_regular(path, follow=False, max_size=max_bytes) as f:
            if not _trusted(os.fstat(f.fileno()), folder=False):  # replaced since the check
                return None
            data = f.read(max_bytes + 1)
    except OSError:
        return None
    return data if len(data) <= max_bytes else None


def write_entry(path: Path, data: bytes) -> bool:
    """Write an entry atomically (0600), creating its folder 0700; False when it cannot.

    A folder that breaks the rules is left alone (nothing written into it).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _trusted(os.lstat(path.parent), folder=True):
            return False
        write_atomic(path, data, sync=False)
    except (OSError, BeeError):
        return False  # a read-only or full cache only costs the next build
    return True


def prune(folder: Path, suffix: str, keep: int) -> None:
    """Remove the least recently written entries ending in `suffix` beyond `keep`."""
    with contextlib.suppress(OSError):
        entries = []
        for entry in os.scandir(folder):
            if entry.name.endswith(suffix) and entry.is_file(follow_symlinks=False):
                entries.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.path))
        entries.sort(reverse=True)
        for _, old in entries[keep:]:
            with contextlib.suppress(OSError):
                os.unlink(old)

"""Function tables cached per build-id, so a warm report does not re-read symbol tables.

`$XDG_CACHE_HOME/bee/symtab/<build-id>.v1.msgpack` holds the table chosen for a binary
(from its separate debug file or its own `.symtab`) as plain arrays. An entry that is
unreadable, of another version or for another build-id is ignored and rewritten; only
complete tables are cached (a `.dynsym`-only table may improve when a debug file appears).
"""

from __future__ import annotations

from pathlib import Path

import msgpack

from bee_contract.atomic import write_atomic
from bee_contract.buildid import valid_build_id
from bee_contract.errors import BeeError
from bee_report.elf.symbols import FunctionTable

VERSION = 1
CACHED_ORIGINS = ("debug file", "symtab")


def _path(cache_dir: Path, build_id: str) -> Path:
    return cache_dir / "symtab" / f"{build_id}.v{VERSION}.msgpack"


def load(cache_dir: Path | None, build_id: str | None) -> FunctionTable | None:
    """The cached table of `build_id`, or None (absent, damaged or foreign)."""
    if cache_dir is None or build_id is None or not valid_build_id(build_id):
        return None
    try:
        raw = _path(cache_dir, build_id).read_bytes()
        data = msgpack.unpackb(raw, raw=False)
        if not isinstance(data, dict) or data.get("build_id") != build_id:
            return None
        return FunctionTable.from_arrays(data)
    except (OSError, ValueError, TypeError, BeeError, msgpack.UnpackException):
        return None


def store(cache_dir: Path | None, build_id: str | None, origin: str,
          table: FunctionTable) -> None:
    """Cache a complete table; failures to write are ignored (the cache is an optimisation)."""
    if (cache_dir is None or build_id is None or not valid_build_id(build_id)
            or origin not in CACHED_ORIGINS):
        return
    data = {"build_id": build_id, "origin": origin, **table.to_arrays()}
    path = _path(cache_dir, build_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, msgpack.packb(data, use_bin_type=True), mode=0o644, sync=False)
    except (OSError, BeeError):
        pass

"""Function tables cached per build-id, so a warm report does not re-read symbol tables.

`$XDG_CACHE_HOME/bee/symtab/<build-id>.v1.msgpack` holds the table chosen for a binary
as plain arrays, with where it came from. An entry that is unreadable, of another version
or for another build-id is ignored and rewritten. Copies of one build might be stripped or
not and a debug file can appear later, so an entry is used only when its origin is at least
as rich as what the files found now could give (:func:`richest_origin`).
"""

from __future__ import annotations

from pathlib import Path

import msgpack

from bee_contract.atomic import write_atomic
from bee_contract.buildid import valid_build_id
from bee_contract.errors import BeeError
from bee_report.elf.elffile import ElfFile
from bee_report.elf.symbols import FunctionTable

VERSION = 1
ORIGINS = ("dynsym", "minidebuginfo", "symtab", "debug file")
"""Where a table comes from, poorest first (see find.debuginfo.best_symbol_source)."""


def richest_origin(elf: ElfFile, have_debug_file: bool) -> str:
    """The best origin a table of `elf` (with the debug file found, if any) could have."""
    if have_debug_file:
        return "debug file"
    if elf.section(".symtab") is not None:
        return "symtab"
    return "minidebuginfo" if elf.section(".gnu_debugdata") is not None else "dynsym"


def _path(cache_dir: Path, build_id: str) -> Path:
    return cache_dir / "symtab" / f"{build_id}.v{VERSION}.msgpack"


def load(cache_dir: Path | None, build_id: str | None,
         at_least: str = ORIGINS[0]) -> FunctionTable | None:
    """The cached table of `build_id`, or None (absent, damaged, foreign, or from an origin
    poorer than `at_least`)."""
    if cache_dir is None or build_id is None or not valid_build_id(build_id):
        return None
    try:
        raw = _path(cache_dir, build_id).read_bytes()
        data = msgpack.unpackb(raw, raw=False)
        if not isinstance(data, dict) or data.get("build_id") != build_id:
            return None
        origin = data.get("origin")
        if origin not in ORIGINS or ORIGINS.index(origin) < ORIGINS.index(at_least):
            return None
        return FunctionTable.from_arrays(data)
    except (OSError, ValueError, TypeError, BeeError, msgpack.UnpackException):
        return None


def store(cache_dir: Path | None, build_id: str | None, origin: str,
          table: FunctionTable) -> None:
    """Cache a table and its origin; failures to write are ignored (an optimisation)."""
    if cache_dir is None or build_id is None or not valid_build_id(build_id):
        return
    data = {"build_id": build_id, "origin": origin, **table.to_arrays()}
    path = _path(cache_dir, build_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, msgpack.packb(data, use_bin_type=True), mode=0o644, sync=False)
    except (OSError, BeeError):
        pass

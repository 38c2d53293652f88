"""Function tables cached per build-id and source, so a warm report does not re-read
symbol tables.

`$XDG_CACHE_HOME/bee/symtab/<build-id>.<source>.v3.msgpack` holds the table chosen for a
binary (from its separate debug file, its own `.symtab`, MiniDebugInfo or `.dynsym`, plus
its PLT stubs) as plain arrays, with that origin; `<source>` is
:func:`bee_report.find.cachedir.source_key` of the files it was read from, so a table
built from one file (say, of an untrusted `--symbols` folder) never answers for another
with the same build-id. An entry that is unreadable, of another version or for another
build-id or source is ignored and rewritten. Every origin is cached: a debug file that
appears later, or another copy of the binary, is another source, hence another entry.
"""

from __future__ import annotations

from pathlib import Path

import msgpack

from bee_contract.atomic import write_atomic
from bee_contract.buildid import valid_build_id
from bee_contract.errors import BeeError
from bee_contract.safeopen import read_regular
from bee_report.elf.symbols import FunctionTable

VERSION = 3  # 2: keyed by source, with its origin; 3: PLT stubs named (name@plt)
#: A larger file was not written by bee (a table of a million functions takes ~40 MB).
MAX_FILE_BYTES = 256 << 20


def _path(cache_dir: Path, build_id: str, source: str) -> Path:
    return cache_dir / "symtab" / f"{build_id}.{source}.v{VERSION}.msgpack"


def load(cache_dir: Path | None, build_id: str | None,
         source: str | None) -> FunctionTable | None:
    """The cached table of `build_id` read from `source`, or None (absent, damaged or
    foreign)."""
    if cache_dir is None or build_id is None or not valid_build_id(build_id) or not source:
        return None
    try:
        # a link, FIFO or device in the cache folder is not bee's: not followed, never
        # blocks (as the frame cache), and a read is bounded
        raw = read_regular(_path(cache_dir, build_id, source), MAX_FILE_BYTES + 1,
                           follow=False, max_size=MAX_FILE_BYTES)
        if len(raw) > MAX_FILE_BYTES:  # grew while being read
            return None
        data = msgpack.unpackb(raw, raw=False)
        if (not isinstance(data, dict) or data.get("build_id") != build_id
                or data.get("source") != source):
            return None
        return FunctionTable.from_arrays(data)
    except (OSError, ValueError, TypeError, BeeError, msgpack.UnpackException):
        return None


def store(cache_dir: Path | None, build_id: str | None, source: str | None, origin: str,
          table: FunctionTable) -> None:
    """Cache a table and its origin; failures to write are ignored (an optimisation)."""
    if cache_dir is None or build_id is None or not valid_build_id(build_id) or not source:
        return
    data = {"build_id": build_id, "source": source, "origin": origin, **table.to_arrays()}
    path = _path(cache_dir, build_id, source)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, msgpack.packb(data, use_bin_type=True), sync=False)
    except (OSError, BeeError):
        pass

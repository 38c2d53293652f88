"""The one debug-info loading sequence of a located binary, shared by `bee report` and
`bee symbolize`: its debug file (build-id trees, debuglink, debuginfod), its best function
table (cached per build-id) and its DWARF when asked for.

Kept apart from :mod:`bee_report.symbolize` so that `bee symbolize` (addresses of one
binary) does not import what turns whole recordings into profiles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bee_contract.cachehome import user_cache_dir
from bee_contract.errors import BeeError
from bee_report.diag import warn
from bee_report.elf.elffile import ElfFile
from bee_report.find.cachedir import source_key

if TYPE_CHECKING:  # the loading sequence imports its modules when a binary is found
    from bee_report.dwarf.lines import DebugInfo
    from bee_report.elf.symbols import FunctionTable
    from bee_report.find.debuginfod import Debuginfod


@dataclass(frozen=True, slots=True)
class SymbolizeOptions:
    """How to symbolize."""

    symbol_dirs: tuple[Path, ...] = ()
    use_original_paths: bool = True
    dwarf: bool = True  # source lines and inlined frames from DWARF when available
    cache_dir: Path | None = None  # per-build-id cache; None: no cache
    offline: bool = False  # never ask debuginfod servers


@dataclass
class Image:
    """A located binary ready for lookups: its ELF, function table and debug info."""

    elf: ElfFile
    functions: FunctionTable
    debug: DebugInfo | None = None
    #: False when its DWARF could not be read (a warning said so): nothing of it is saved
    complete: bool = True


def debuginfod_client(opts: SymbolizeOptions) -> Debuginfod | None:
    """The debuginfod client of DEBUGINFOD_URLS, or None when it is not set."""
    if not os.environ.get("DEBUGINFOD_URLS", "").strip():
        return None
    from bee_report.find.debuginfod import Debuginfod

    return Debuginfod.from_environment(cache_dir=opts.cache_dir or user_cache_dir(),
                                       offline=opts.offline)


def find_debug(elf: ElfFile, path: Path, recorded_path: str, build_id: str | None,
               opts: SymbolizeOptions, debuginfod: Debuginfod | None
               ) -> tuple[Path | None, str | None]:
    """The debug file of the located binary `elf` at `path` (build-id trees, debuglink,
    debuginfod), or None, and the key of the files its tables are read from
    (:func:`bee_report.find.cachedir.source_key`; None when they cannot be examined)."""
    from bee_report.find.debuginfo import find_debug_file

    debug_path = find_debug_file(path, elf, recorded_path, build_id, opts.symbol_dirs,
                                 None if elf.has_debug_info else debuginfod)
    return debug_path, source_key(path, debug_path)


def load_tables(elf: ElfFile, path: Path, debug_path: Path | None, files: str | None,
                recorded_path: str, build_id: str | None, opts: SymbolizeOptions) -> Image:
    """The best function table (cached per build-id and `files`) and DWARF when asked for."""
    from bee_report.elf import symtab_cache
    from bee_report.find.debuginfo import best_symbol_source

    bid = build_id or elf.build_id
    functions = symtab_cache.load(opts.cache_dir, bid, files)
    if functions is None:
        source = best_symbol_source(elf, debug_path)
        if source.debug is not None:
            source.debug.close()
        functions = source.functions
        symtab_cache.store(opts.cache_dir, bid, files, source.origin, functions)
    debug = None
    complete = True
    dwarf_file = debug_path or (path if elf.has_debug_info else None)
    if opts.dwarf and dwarf_file is not None:
        from bee_report.dwarf.lines import DebugInfo

        try:
            debug = DebugInfo.load(dwarf_file, bid, opts.cache_dir)
        except BeeError as exc:
            warn(f"{exc}; no source lines or inlined frames for {recorded_path}")
            complete = False
    return Image(elf, functions, debug, complete)


def load_image(elf: ElfFile, path: Path, recorded_path: str, build_id: str | None,
               opts: SymbolizeOptions, debuginfod: Debuginfod | None) -> Image:
    """The one debug-info loading sequence: the debug file (build-id trees, debuglink,
    debuginfod), the best function table (cached per build-id), DWARF when asked for.

    `elf` is the located binary at `path`; `recorded_path` its path on the target and
    `build_id` the recorded one (None: the file's own).
    """
    debug_path, files = find_debug(elf, path, recorded_path, build_id, opts, debuginfod)
    return load_tables(elf, path, debug_path, files, recorded_path, build_id, opts)


__all__ = ["Image", "SymbolizeOptions", "debuginfod_client", "find_debug", "load_image",
           "load_tables"]

"""Find a binary's separate debug information, wherever it lives.

:func:`find_debug_file` is the one entry point for the symbolizer. It tries, in order:

1. build-id trees: ``<dir>/.build-id/xx/rest.debug`` and ``<dir>/<build-id>/debuginfo``
   in each ``--symbols`` folder, then ``/usr/lib/debug/.build-id/xx/rest.debug``;
2. the binary's ``.gnu_debuglink`` name (see :func:`debuglink_candidates`), each file also
   checked against the link's CRC32 (a mismatch is skipped with a warning);
3. debuginfod servers (:class:`bee_report.find.debuginfod.Debuginfod`), when configured.

Every candidate must carry the expected build-id (debug files keep the binary's
NT_GNU_BUILD_ID note); one with another build-id is skipped with a warning.

When no separate debug file exists, :func:`best_symbol_source` falls back to the binary's
own ``.symtab``, then to MiniDebugInfo (``.gnu_debugdata``, an xz-compressed ELF holding
the local function symbols stripped from ``.symtab``), merged with ``.dynsym``.
"""

from __future__ import annotations

import os
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bee_contract.buildid import (
    DEBUG_ROOTS,
    build_id_of_path,
    build_id_tree_path,
    valid_build_id,
)
from bee_contract.errors import BeeError
from bee_contract.safeopen import open_regular
from bee_report.diag import warn
from bee_report.elf.elffile import ElfFile

if TYPE_CHECKING:  # symbol tables are imported when read; the debuginfod client (and
    # urllib) only when DEBUGINFOD_URLS is set
    from bee_report.elf.symbols import FunctionTable
    from bee_report.find.debuginfod import Debuginfod

_CHUNK = 1 << 20

__all__ = [
    "SymbolSource",
    "best_symbol_source",
    "build_id_candidates",
    "debuglink_candidates",
    "file_crc32",
    "find_debug_file",
    "merge_function_tables",
]


def find_debug_file(
    binary_path: Path,
    elf: ElfFile,
    original_path: str,
    build_id: str | None,
    symbol_dirs: Sequence[Path],
    debuginfod: Debuginfod | None,
    *,
    global_debug_dirs: Sequence[Path] = DEBUG_ROOTS,
) -> Path | None:
    """The verified separate debug file of the located binary `elf` (at `binary_path`).

    `original_path` is the binary's path on the target, `build_id` the recorded one (the
    binary's own is used when None). Returns None when there is none (or none verifies).
    """
    bid = build_id if build_id is not None else elf.build_id
    if bid is not None and not valid_build_id(bid):
        return None
    if bid is not None:
        for cand in build_id_candidates(bid, symbol_dirs, global_debug_dirs):
            if _usable(cand, binary_path) and _build_id_ok(cand, bid):
                return cand
    if elf.debuglink is not None:
        name, crc = elf.debuglink
        for cand in debuglink_candidates(binary_path, original_path, name, symbol_dirs,
                                         global_debug_dirs):
            if not _usable(cand, binary_path):
                continue
            if bid is not None and not _build_id_ok(cand, bid):
                continue
            got = file_crc32(cand)
            if got == crc:
                return cand
            if got is not None:
                warn(f"{cand}: CRC32 {got:08x} differs from the .gnu_debuglink of {binary_path} "
                     f"({crc:08x}); not used")
    if debuginfod is not None and bid is not None:
        return debuginfod.fetch(bid, "debuginfo")
    return None


def build_id_candidates(
    build_id: str, symbol_dirs: Sequence[Path], global_debug_dirs: Sequence[Path]
) -> list[Path]:
    """Build-id tree and debuginfod-layout paths of `build_id`'s debug file, in order."""
    if not valid_build_id(build_id):
        return []
    out: list[Path] = []
    for d in symbol_dirs:
        out += [build_id_tree_path(Path(d), build_id, ".debug"), Path(d) / build_id / "debuginfo"]
    out += [build_id_tree_path(Path(d), build_id, ".debug") for d in global_debug_dirs]
    return out


def debuglink_candidates(
    binary_path: Path,
    original_path: str,
    link_name: str,
    symbol_dirs: Sequence[Path],
    global_debug_dirs: Sequence[Path] = DEBUG_ROOTS,
) -> list[Path]:
    """Where a `.gnu_debuglink` name is looked for, in order, without duplicates.

    Next to the located binary and in its ``.debug/``; next to the original path (when it
    exists here) and in its ``.debug/``; under each global debug folder mirroring the
    original (and located) folder; in each symbols folder, flat, mirroring the original
    folder (and its ``.debug/``) and as ``usr/lib/debug/<original folder>/``. A link name
    that is not a plain file name gives no candidate (and a warning).
    """
    if not _plain_name(link_name):
        warn(f"{binary_path}: .gnu_debuglink name {link_name!r} is not a plain file name; "
             "ignored")
        return []
    here = Path(binary_path).parent
    orig = _safe_dir(original_path)
    dirs: list[Path] = [here, here / ".debug"]
    if orig is not None:
        dirs += [Path("/") / orig, Path("/") / orig / ".debug"]
    for g in global_debug_dirs:
        if orig is not None:
            dirs.append(Path(g) / orig)
        if here.is_absolute():
            dirs.append(Path(g) / here.relative_to("/"))
    for d in symbol_dirs:
        dirs.append(Path(d))
        if orig is not None:
            dirs += [Path(d) / orig, Path(d) / orig / ".debug",
                     Path(d) / "usr" / "lib" / "debug" / orig]
    return list(dict.fromkeys(d / link_name for d in dirs))


def file_crc32(path: Path) -> int | None:
    """zlib CRC-32 of a whole file (what .gnu_debuglink stores), None when unreadable."""
    crc = 0
    try:
        with open_regular(path) as f:  # a regular file, never under /proc, /sys or /dev
            while chunk := f.read(_CHUNK):
                crc = zlib.crc32(chunk, crc)
    except OSError:
        return None
    return crc


@dataclass(frozen=True, slots=True)
class SymbolSource:
    """Function names for one binary and where they came from.

    ``origin`` is ``debug file`` (a separate debug file's ``.symtab``), ``symtab`` (the
    binary's own), ``minidebuginfo`` (``.gnu_debugdata`` merged with ``.dynsym``) or
    ``dynsym`` (exported functions only). ``debug`` is the opened debug file, when one was
    used, for DWARF lookups; the caller closes it.
    """

    functions: FunctionTable
    origin: str
    debug: ElfFile | None = None


def best_symbol_source(elf: ElfFile, debug_path: Path | None) -> SymbolSource:
    """The richest function table for `elf`: debug file > .symtab > MiniDebugInfo > .dynsym.

    PLT stubs are added as `name@plt` (see :mod:`bee_report.elf.plt`; read from `elf`
    itself, a debug file has no PLT contents). Problems with the debug file, the
    MiniDebugInfo or the PLT are warnings, never errors.
    """
    from bee_report.elf.plt import plt_functions  # symbol tables: not read by a warm report

    source = _best_table(elf, debug_path)
    try:
        stubs = plt_functions(elf)
    except BeeError as exc:
        warn(str(exc))
        return source
    if not len(stubs):
        return source
    return replace(source, functions=merge_function_tables(source.functions, stubs))


def _best_table(elf: ElfFile, debug_path: Path | None) -> SymbolSource:
    own = elf.functions()
    if debug_path is not None:
        try:
            dbg = ElfFile.open(debug_path)
        except BeeError as exc:
            warn(str(exc))
        else:
            try:
                table = dbg.functions()
            except BeeError as exc:
                warn(str(exc))
                table = None
            if table is not None and len(table) >= len(own):
                return SymbolSource(table, "debug file", dbg)
            dbg.close()
    if elf.section(".symtab") is not None and len(own):
        return SymbolSource(own, "symtab")
    try:
        mini = elf.gnu_debugdata()
    except BeeError as exc:
        warn(str(exc))
        mini = None
    if mini is not None:
        with mini:
            try:
                extra = mini.functions()
            except BeeError as exc:
                warn(str(exc))
                extra = None
        if extra is not None and len(extra):
            return SymbolSource(merge_function_tables(extra, own), "minidebuginfo")
    return SymbolSource(own, "dynsym")


def merge_function_tables(*tables: FunctionTable) -> FunctionTable:
    """One table holding every entry of `tables`; for equal ranges the earlier table wins."""
    from bee_report.elf.symbols import FunctionTable

    entries: list[tuple[int, int, int, int, str]] = []
    for t, table in enumerate(tables):
        arrays = table.to_arrays()
        entries += [(start, -size, t, i, name) for i, (start, size, name) in
                    enumerate(zip(arrays["starts"], arrays["sizes"], arrays["names"],
                                  strict=True))]
    entries.sort()
    starts: array[int] = array("Q")
    sizes: array[int] = array("Q")
    names: list[str] = []
    last: tuple[int, int] | None = None
    for start, neg_size, _t, _i, name in entries:
        if (start, neg_size) != last:
            last = (start, neg_size)
            starts.append(start)
            sizes.append(-neg_size)
            names.append(name)
    return FunctionTable(starts, sizes, names)


def _usable(cand: Path, binary_path: Path) -> bool:
    """An existing regular file that is not the binary itself."""
    try:
        if not cand.is_file():
            return False
    except OSError:
        return False
    try:
        return not os.path.samefile(cand, binary_path)
    except OSError:
        return True


def _build_id_ok(cand: Path, build_id: str) -> bool:
    got = build_id_of_path(str(cand))
    if got == build_id:
        return True
    warn(f"{cand}: build-id {got or 'none'} differs from {build_id}; not used")
    return False


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def _safe_dir(original_path: str) -> PurePosixPath | None:
    """The original path's folder, relative to /, when absolute and free of `..`."""
    if not original_path.startswith("/") or "\0" in original_path:
        return None
    parts = [p for p in PurePosixPath(original_path).parent.parts[1:] if p != "."]
    if ".." in parts:
        return None
    return PurePosixPath(*parts) if parts else PurePosixPath()


"""Source lines and inlined frames from DWARF, printed the way ``addr2line -i -f -C`` does.

Engine: Sentry's ``symbolic``, chosen by measurement against llvm-symbolizer, addr2line
and pyelftools (the numbers and how they were taken: ``bench/README.md``, "DWARF engine").

Agreement with addr2line on those runs (tests/test_dwarf.py counts it): outermost name
100% on both; innermost file:line and whole chains 99.8% on libc and 97.6% on python3.11, whose LTO
build has functions without any DWARF subprogram (see the known differences below). The
C, C++ and Rust fixtures of the tests agree at 100% (Rust with DWARF 5: chains 98.7%, where
addr2line drops inlined frames that llvm-symbolizer and we show).

How: Sentry's ``symbolic`` (Rust, gimli; DWARF 2-5, compressed sections) builds a SymCache:
address ranges -> (file, line, function, inlined-into) with the inline tree resolved. We read
that buffer ourselves (:class:`bee_report.dwarf.symcache.SymCacheView`): it keeps the raw
comp_dir/directory/name of each file, so paths come out as binutils joins them
(``./malloc/./malloc/malloc.c``), and a cache entry is used straight from ``mmap``.

Names follow binutils 2.40 (``bfd/dwarf2.c``), not symbolic's "symbol table first" rule, so
ELF function symbols are hidden from symbolic while it builds, and applied here:

* a DWARF function with a linkage name prints it, demangled; in C, DW_AT_name counts as
  one; a C++/Rust function with only DW_AT_name prints the ELF symbol starting exactly at
  its entry, else DW_AT_name (binutils decides that on its first lookup and remembers it;
  we apply it to every lookup);
* inlined frames print their DWARF names; outer frames' file:line are the call sites;
* an address no DWARF function covers (the nearest SymCache range starts before a FUNC
  symbol that starts before the address) prints the ELF symbol addr2line picks: nearest
  start at or below it in its section, larger size on ties, then the first; its file is the
  preceding STT_FILE symbol for a local symbol; the line is unknown.

Known differences from addr2line 2.40: for DWARF 5 it reports line rows before a sequence's
first DW_LNS_set_file under file 0 where the default is file 1 (a binutils bug that
llvm-symbolizer does not share; we print file 1); when several DWARF functions share one
range it takes the last one, symbolic the first (we re-read GNU as units, the only ones
that do this, to take the last too: :mod:`bee_report.dwarf.units`); line rows of code that
no DWARF function covers (assembly without subprograms, some LTO clones) give no file:line
here.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bee_contract.buildid import valid_build_id
from bee_contract.errors import DebugInfoError, ElfError
from bee_contract.safeopen import open_regular
from bee_report.dwarf import tables as cache_tables
from bee_report.dwarf.symcache import SymCacheView
from bee_report.dwarf.tables import NONE, Tables, u32
from bee_report.elf.elffile import ElfFile
from bee_report.find.cachedir import source_key

__all__ = ["DebugInfo", "SourceFrame"]

_PROGRESS_EVERY = 1024
_MAX_DEPTH = 256  # inline depth guard against a SymCache with a cycle
_LANG_UNKNOWN, _LANG_C = 0, 1  # symbolic's codes; binutils takes DW_AT_name as final there
_COLD = re.compile(rb"\.cold(?:\.\d+)?$")


@dataclass(frozen=True, slots=True)
class SourceFrame:
    """One frame of a symbolized address; lookups return them innermost first."""

    function: str | None
    file: str | None
    line: int | None
    inlined: bool


def default_demangle(name: str) -> str:
    """Demangle like ``addr2line -C``: :func:`bee_report.demangle.binutils.demangle`."""
    if name[:1] not in "_.$":  # what demangle() returns unchanged anyway, only faster
        return name
    from bee_report.demangle.binutils import demangle

    return demangle(name)


def join_path(comp_dir: str | None, directory: str | None, name: str, dwarf5: bool) -> str:
    """binutils' ``concat_filename`` from the parts of a SymCache file entry."""
    if name.startswith("/"):
        return name
    subdir = directory or None
    # gimli reports directory index 0 of DWARF<5 as the comp dir; binutils uses none there.
    if not dwarf5 and subdir == comp_dir:
        subdir = None
    dir_name = None if subdir is not None and subdir.startswith("/") else comp_dir or None
    if dir_name is None:
        dir_name, subdir = subdir, None
    if dir_name is None:
        return name
    return f"{dir_name}/{subdir}/{name}" if subdir else f"{dir_name}/{name}"


class DebugInfo:
    """Symbolizer of one debug file: ELF virtual address -> frames, innermost first."""

    def __init__(
        self, tables: Tables, where: Path, demangle: Callable[[str], str] | None = None
    ) -> None:
        """Use :meth:`load`; ``tables`` come from :func:`build` or the cache."""
        self._t = tables
        self._sc = SymCacheView(tables.symcache, where)
        self._demangle = demangle or default_demangle
        self._names: dict[str, str] = {}
        self._paths: dict[int, str | None] = {}
        self._by_range: dict[int, tuple[SourceFrame, ...]] = {}
        self._by_symbol: dict[int, tuple[SourceFrame, ...]] = {}
        self._outer: dict[int, str | None] = {}

    @classmethod
    def load(
        cls,
        debug_path: Path,
        build_id: str | None,
        cache_dir: Path | None,
        demangle: Callable[[str], str] | None = None,
    ) -> DebugInfo | None:
        """Symbolizer of ``debug_path``, or None when it has no DWARF.

        With a ``cache_dir`` and a valid ``build_id`` (lowercase hex) the tables are read
        from, or built and written to, ``cache_dir/dwarf/<build-id>.v<N>.beedwarf``; an
        entry that is damaged or not for this build-id is rebuilt; nothing is written when
        the file's own build-id note says otherwise. ``demangle`` replaces
        :func:`default_demangle` (``str`` keeps mangled names). Raises
        :class:`DebugInfoError` when the file is unreadable or malformed.
        """
        # keyed by the file as well: a build-id is no proof that two files agree
        source = source_key(debug_path) if cache_dir is not None else None
        cache = cache_dir if valid_build_id(build_id) and source is not None else None
        if cache is not None and build_id is not None and source is not None:
            tables = cache_tables.load(cache, build_id, source)
            if tables is not None:
                try:
                    return cls(tables, debug_path, demangle)
                except DebugInfoError:
                    pass  # a valid entry around a SymCache we cannot read: rebuild
        tables, own_id = build(debug_path)
        if tables is None:
            return None
        # Never file a debug file under a build-id that its own note contradicts.
        if (cache is not None and build_id is not None and source is not None
                and own_id in (None, build_id)):
            cache_tables.store(cache, build_id, source, tables)
        return cls(tables, debug_path, demangle)

    def lookup(self, vaddr: int) -> tuple[SourceFrame, ...]:
        """Frames of ``vaddr``, innermost first as ``addr2line -i``; () when unknown."""
        r = self._range(vaddr)
        if r is not None:
            frames = self._by_range.get(r)
            if frames is None:
                frames = self._by_range[r] = self._frames(self._sc.range_base + r)
            return frames
        t = self._t
        sym = t.symbol_at(vaddr)
        if sym is None:
            return ()
        frames = self._by_symbol.get(sym)
        if frames is None:
            file_i = t.sym_file[sym]
            file = t.name(file_i).decode("utf-8", "replace") if file_i != NONE else None
            name = self._name(t.name(t.sym_name[sym]).decode("utf-8", "replace"))
            frames = self._by_symbol[sym] = (SourceFrame(name, file, None, False),)
        return frames

    def lookup_many(
        self, vaddrs: Sequence[int], progress: Callable[[int], None] | None = None
    ) -> dict[int, tuple[SourceFrame, ...]]:
        """:meth:`lookup` of each address; ``progress(done)`` is called every 1024 and at
        the end."""
        out: dict[int, tuple[SourceFrame, ...]] = {}
        lookup = self.lookup
        for i, vaddr in enumerate(vaddrs):
            if vaddr not in out:
                out[vaddr] = lookup(vaddr)
            if progress is not None and i % _PROGRESS_EVERY == _PROGRESS_EVERY - 1:
                progress(i + 1)
        if progress is not None:
            progress(len(vaddrs))
        return out

    def function_name(self, vaddr: int) -> str | None:
        """``lookup(vaddr)[-1].function`` (or None) without building the inlined frames."""
        r = self._range(vaddr)
        if r is None:
            frames = self.lookup(vaddr)
            return frames[-1].function if frames else None
        if r not in self._outer:
            sc = self._sc
            loc = sc.range_base + r
            for _ in range(_MAX_DEPTH):
                caller = sc.locations[4 * loc + 3]
                if caller == NONE:
                    break
                loc = caller
            self._outer[r] = self._name(self._raw_name(sc.locations[4 * loc + 2], True))
        return self._outer[r]

    def _range(self, vaddr: int) -> int | None:
        """Index of the SymCache range of ``vaddr`` when a DWARF function covers it."""
        t, sc = self._t, self._sc
        rel = vaddr - t.load_address
        if 0 <= rel <= 0xFFFFFFFF:
            r = bisect.bisect_right(sc.ranges, rel) - 1
            if (
                r >= 0
                and rel < t.range_limit[r]
                and sc.locations[4 * (sc.range_base + r) + 2] != NONE
            ):
                return r
        return None

    def _frames(self, loc: int) -> tuple[SourceFrame, ...]:
        sc = self._sc
        chain: list[tuple[int, int, int]] = []
        while loc != NONE and len(chain) < _MAX_DEPTH:
            file_i, line, func, loc = sc.locations[4 * loc : 4 * loc + 4]
            chain.append((file_i, line, func))
        last = len(chain) - 1
        return tuple(
            SourceFrame(
                self._name(self._raw_name(func, i == last)),
                self._path(file_i),
                line or None,
                i != last,
            )
            for i, (file_i, line, func) in enumerate(chain)
        )

    def _raw_name(self, func: int, outermost: bool) -> str | None:
        t, sc = self._t, self._sc
        if outermost and func < len(t.fn_override) and t.fn_override[func] != NONE:
            return t.name(t.fn_override[func]).decode("utf-8", "replace")
        return sc.string(sc.functions[4 * func]) if 4 * func < len(sc.functions) else None

    def _name(self, raw: str | None) -> str | None:
        if not raw:
            return None
        name = self._names.get(raw)
        if name is None:
            name = self._names[raw] = self._demangle(raw)
        return name

    def _path(self, file_i: int) -> str | None:
        if file_i not in self._paths:
            sc, path = self._sc, None
            if file_i != NONE and 6 * file_i + 2 < len(sc.files):
                comp_dir, directory, name = sc.files[6 * file_i : 6 * file_i + 3]
                base = sc.string(name)
                if base:
                    path = join_path(
                        sc.string(comp_dir), sc.string(directory), base, self._t.dwarf5
                    )
            self._paths[file_i] = path
        return self._paths[file_i]


def _run_symbolic(data: bytes, where: Path) -> bytes | None:
    """SymCache bytes of the ELF image ``data``; None if symbolic finds no debug info."""
    from symbolic.debuginfo import Archive
    from symbolic.exceptions import SymbolicError

    try:
        archive: Any = Archive.from_bytes(data)  # borrows ``data``: keep it alive until done
        objects = list(archive.iter_objects())
        if not objects or "debug" not in objects[0].features:
            return None
        stream: Any = objects[0].make_symcache().open_stream()
        return bytes(stream.read())
    except (SymbolicError, LookupError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise DebugInfoError(f"{where}: malformed debug info: {first}") from None


def build(debug_path: Path) -> tuple[Tables | None, str | None]:
    """The tables of ``debug_path`` (None without DWARF) and the file's own build-id."""
    from bee_report.dwarf.isolate import in_child  # building only: not on a warm start
    from bee_report.dwarf.symbolic_input import symbolic_image

    try:
        with open_regular(debug_path) as f:  # no FIFO, device or /proc file: see safeopen
            raw = f.read()
        elf = ElfFile.from_bytes(raw, str(debug_path))
        if not elf.has_debug_info:
            return None, elf.build_id
        image = symbolic_image(raw, elf)
        blob = in_child(lambda: _run_symbolic(image, debug_path), debug_path)
        return (None if blob is None else _tables(elf, blob, debug_path)), elf.build_id
    except OSError as e:
        raise DebugInfoError(f"{debug_path}: cannot read: {e.strerror or e}") from None
    except ElfError as e:
        raise DebugInfoError(str(e)) from None


def _tables(elf: ElfFile, blob: bytes, debug_path: Path) -> Tables:
    from bee_report.dwarf.symbol_facts import symbol_tables
    from bee_report.dwarf.units import assembler_names

    load_address = next((p.vaddr for p in elf.segments if p.p_type == 1), 0)  # PT_LOAD
    dwarf5 = any(elf.section(n) for n in (".debug_line_str", ".zdebug_line_str"))
    names: dict[bytes, int] = {}
    syms, func_starts = symbol_tables(elf, names)
    view = SymCacheView(memoryview(blob), debug_path)
    limits = [NONE] * len(view.ranges)
    for start in func_starts:  # FUNC symbols inside a range end its DWARF part
        rel = start - load_address
        r = bisect.bisect_right(view.ranges, rel) - 1
        if 0 <= rel <= 0xFFFFFFFF and r >= 0 and view.ranges[r] != rel:
            limits[r] = min(limits[r], rel)
    syms["range_limit"] = u32(limits)
    tables = Tables(
        symcache=memoryview(blob),
        strings=memoryview(b""),
        name_offsets=u32([0]),
        fn_override=u32([]),
        load_address=load_address,
        dwarf5=dwarf5,
        **syms,
    )
    unknown = [
        view.functions[4 * f + 2] + load_address
        for f in range(view.function_count)
        if view.functions[4 * f + 3] == _LANG_UNKNOWN and view.functions[4 * f + 2] != NONE
    ]
    asm = assembler_names(elf, unknown)
    ordered = sorted(names, key=names.__getitem__)
    override = [NONE] * view.function_count
    for f in range(view.function_count):
        name_off, _comp_dir, entry, lang = view.functions[4 * f : 4 * f + 4]
        name, vaddr = view.string(name_off) or "", entry + load_address
        if entry == NONE:
            continue  # only ever inlined
        if lang == _LANG_UNKNOWN and vaddr in asm:
            override[f] = names.setdefault(asm[vaddr], len(names))
        if name and (lang in (_LANG_C, _LANG_UNKNOWN) or name[:2] in ("_Z", "_R")):
            continue  # binutils prints this DWARF name as it is
        sym = tables.symbol_at(vaddr)
        if sym is not None and tables.sym_start[sym] == vaddr:
            # symbolic's entry is the lowest range, binutils' the first listed, which for a
            # GCC hot/cold split is the hot part: "f", not an "f.cold" placed below it.
            hot = _COLD.sub(b"", ordered[tables.sym_name[sym]])
            override[f] = names.get(hot, tables.sym_name[sym])
    ordered = sorted(names, key=names.__getitem__)
    offsets = [0]
    for n in ordered:
        offsets.append(offsets[-1] + len(n))
    return Tables(symcache=tables.symcache, strings=memoryview(b"".join(ordered)),
                  name_offsets=u32(offsets), fn_override=u32(override),
                  load_address=load_address, dwarf5=dwarf5, **syms)  # fmt: skip

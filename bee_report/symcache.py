"""Symbolization tables of one debug file, their on-disk cache, and the raw readers behind.

:func:`bee_report.dwarf.build` turns a debug file into :class:`Tables`: the SymCache (format
v9) that Sentry's ``symbolic`` (Rust, gimli) makes from the DWARF, read here by
:class:`SymCacheView`, plus the ELF symbol-table facts (:func:`symbol_tables`) needed to
print names the way ``addr2line`` does (the rules are in :mod:`bee_report.dwarf`), with a
minimal DWARF unit reader (:class:`DwarfUnit`) for the little symbolic does not keep. Every
table is a flat little-endian buffer, so a cached entry is used straight from ``mmap``.

On-disk layout (integers little-endian, sections 8-byte aligned)::

    header   MAGIC, format version, section count, CRC-32 of the rest, flags,
             load address, build-id (length + 128 ASCII bytes)
    table    (offset, length) per section, in the order of ``_SECTIONS``
    sections the buffers of :class:`Tables`

An entry that is truncated, has flipped bytes (CRC), another magic, format version or
build-id reads as absent, and the caller rebuilds it. Writes go to a temporary file in the
same directory followed by ``os.replace``; a cache that cannot be written is skipped.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bee_record.errors import BeeError
from bee_report.elf import ElfError, ElfFile

FORMAT_VERSION = 1
MAGIC = b"BEEDWRF\x00"
NONE = 0xFFFFFFFF
"""The "no index" value of the u32 tables (the SymCache's own convention too)."""

_BUILD_ID_RE = re.compile(r"[0-9a-f]{2,128}")  # fullmatch: "$" would let a "\n" through
_HEADER = struct.Struct("<8sIIIIQB128s")
_ENTRY = struct.Struct("<QQ")
_SECTIONS = (
    ("symcache", "B"),
    ("strings", "B"),
    ("name_offsets", "I"),
    ("fn_override", "I"),
    ("sec_start", "Q"),
    ("sec_end", "Q"),
    ("sec_lo", "I"),
    ("sym_start", "Q"),
    ("sym_name", "I"),
    ("sym_file", "I"),
    ("range_limit", "I"),
)
_FLAG_DWARF5 = 1
_FIXED_FORMS = {0x05: 2, 0x06: 4, 0x07: 8, 0x0B: 1, 0x0C: 1, 0x11: 1, 0x12: 2, 0x13: 4, 0x14: 8,
                0x19: 0, 0x1C: 4, 0x1E: 16, 0x20: 8, 0x21: 0, 0x24: 8, 0x25: 1, 0x26: 2,
                0x27: 3, 0x28: 4, 0x29: 1, 0x2A: 2, 0x2B: 3, 0x2C: 4}  # fmt: skip
_LEB_FORMS = {0x0D, 0x0F, 0x15, 0x1A, 0x1B, 0x22, 0x23, 0x1F01, 0x1F02}
_OFFSET_FORMS = {0x0E, 0x10, 0x17, 0x1D, 0x1F, 0x1F20, 0x1F21}
_SHT_SYMTAB, _SHT_NOBITS, _SHT_DYNSYM = 2, 8, 11
_SHF_ALLOC, _SHF_TLS = 0x2, 0x400
_STT_OBJECT, _STT_FUNC, _STT_SECTION, _STT_FILE, _STT_TLS, _STT_IFUNC = 1, 2, 3, 4, 6, 10
# st_info with FUNC/IFUNC turned into OBJECT: symbolic then names functions from DWARF only.
_HIDE = bytes(b & 0xF0 | _STT_OBJECT if b & 0xF in (_STT_FUNC, _STT_IFUNC) else b
              for b in range(256))  # fmt: skip


class DebugInfoError(BeeError):
    """A debug file is unreadable or its ELF/DWARF is malformed."""


def valid_build_id(build_id: str | None) -> bool:
    """True when ``build_id`` is lowercase hex, 2..128 digits: safe inside a file name."""
    return build_id is not None and _BUILD_ID_RE.fullmatch(build_id) is not None


def cache_file(cache_dir: Path, build_id: str) -> Path:
    """The cache entry of ``build_id`` (validated by the caller) under ``cache_dir``."""
    return cache_dir / "dwarf" / f"{build_id}.v{FORMAT_VERSION}.beedwarf"


@dataclass(frozen=True, slots=True)
class Tables:
    """Lookup tables of one debug file.

    ``symcache`` is symbolic's SymCache v9 (addresses relative to ``load_address``).
    Extra name ``i`` is ``strings[name_offsets[i]:name_offsets[i+1]]``. ``fn_override[f]``
    is the extra name to print for SymCache function ``f`` as outermost frame, or NONE.
    ``sec_*`` are the allocated sections sorted by address; the ELF symbols addr2line can
    pick in section ``s`` are ``sym_*[sec_lo[s]:sec_lo[s+1]]``, sorted by start, one per
    distinct start; ``sym_file`` is their STT_FILE name or NONE. ``range_limit[r]`` is where
    SymCache range ``r`` stops being DWARF (relative; the first FUNC symbol inside it, as
    SymCache ranges have no end of their own) or NONE. ``dwarf5`` says how to read
    directory index 0.
    """

    symcache: memoryview
    strings: memoryview
    name_offsets: memoryview
    fn_override: memoryview
    sec_start: memoryview
    sec_end: memoryview
    sec_lo: memoryview
    sym_start: memoryview
    sym_name: memoryview
    sym_file: memoryview
    range_limit: memoryview
    load_address: int
    dwarf5: bool

    def name(self, index: int) -> bytes:
        """Extra name ``index``."""
        return bytes(self.strings[self.name_offsets[index] : self.name_offsets[index + 1]])

    def symbol_at(self, vaddr: int) -> int | None:
        """Index of the ELF symbol addr2line names ``vaddr`` after, or None."""
        s = bisect.bisect_right(self.sec_start, vaddr) - 1
        if s < 0 or vaddr >= self.sec_end[s]:
            return None
        lo, hi = self.sec_lo[s], self.sec_lo[s + 1]
        i = bisect.bisect_right(self.sym_start, vaddr, lo, hi) - 1
        return i if i >= lo else None


def u32(values: list[int]) -> memoryview:
    return memoryview(struct.pack(f"<{len(values)}I", *values)).cast("I")


def u64(values: list[int]) -> memoryview:
    return memoryview(struct.pack(f"<{len(values)}Q", *values)).cast("Q")


def _symbols(elf: ElfFile) -> Iterator[tuple[bytes, int, int, int, int, int]]:
    """(name, value, size, st_info, st_other, st_shndx) of each entry of .symtab, else of
    .dynsym (addr2line's choice), skipping entry 0."""
    for kind in (_SHT_SYMTAB, _SHT_DYNSYM):
        table = next((s for s in elf.sections if s.sh_type == kind and s.size > s.entsize), None)
        if table is not None and 0 < table.link < len(elf.sections):
            break
    else:
        return
    fmt = ("<" if elf.little_endian else ">") + ("IBBHQQ" if elf.is_64 else "IIIBBH")
    if table.entsize != struct.calcsize(fmt):
        raise ElfError(f"{elf.path}: {table.name} entries of {table.entsize} bytes")
    data, strtab = elf.section_data(table), elf.section_data(elf.sections[table.link])
    whole = data[: len(data) - len(data) % table.entsize]
    for i, entry in enumerate(struct.iter_unpack(fmt, whole)):
        if elf.is_64:
            name_off, info, other, shndx, value, size = entry
        else:
            name_off, value, size, info, other, shndx = entry
        if i:
            end = strtab.find(b"\0", name_off)
            yield strtab[name_off : end if end >= 0 else None], value, size, info, other, shndx


def hide_function_symbols(raw: bytes, elf: ElfFile) -> bytes:
    """A copy of the ELF image ``raw`` whose FUNC/IFUNC symbols are OBJECTs.

    symbolic then names every function from DWARF, as binutils does for DWARF functions.
    """
    buf = bytearray(raw)
    for s in elf.sections:
        if s.sh_type in (_SHT_SYMTAB, _SHT_DYNSYM) and s.entsize and s.offset + s.size <= len(buf):
            info, end = s.offset + (4 if elf.is_64 else 12), s.offset + s.size
            buf[info : end : s.entsize] = bytes(buf[info : end : s.entsize]).translate(_HIDE)
    return bytes(buf)


def symbol_tables(elf: ElfFile, names: dict[bytes, int]) -> tuple[dict[str, memoryview], list[int]]:
    """The ``sec_*``/``sym_*`` tables of :class:`Tables` for ``elf``, and the sorted
    distinct FUNC symbol starts.

    Mirrors binutils' ``elf_find_function``: any symbol but OBJECT/SECTION/FILE/TLS (and
    hidden local zero-size NOTYPE labels) is a candidate; on equal starts the larger size
    wins, then the first in table order; a local symbol's file is the last STT_FILE before
    it, a global's only if no STT_FILE followed a symbol before it. ``names`` maps the
    names used to their index and is extended.
    """
    best: dict[tuple[int, int], tuple[int, int, int]] = {}  # (shndx, start) -> size, name, file
    funcs: set[int] = set()
    file = None
    state = 0  # 0 nothing seen, 1 symbol seen, 2 file seen after a symbol
    for name, value, size, info, other, shndx in _symbols(elf):
        kind, local = info & 0xF, info >> 4 == 0
        if kind == _STT_FILE:
            file, state = name, 2 if state else 0
            continue
        state = state or 1
        if not 0 < shndx < 0xFF00 or kind in (_STT_OBJECT, _STT_SECTION, _STT_TLS):
            continue
        if kind in (_STT_FUNC, _STT_IFUNC):
            funcs.add(value)
        if size == 0 and local and kind == 0 and other & 3 == 2:
            continue  # annobin-style hidden label
        if (size or 1) > best.get((shndx, value), (0,))[0]:
            use_file = file and (local or state != 2)
            file_i = names.setdefault(file, len(names)) if file and use_file else NONE
            best[(shndx, value)] = (size or 1, names.setdefault(name, len(names)), file_i)
    alloc = sorted(
        (s.addr, s.addr + s.size, i)
        for i, s in enumerate(elf.sections)
        if s.flags & _SHF_ALLOC and not s.flags & _SHF_TLS and s.size
    )
    by_section: dict[int, list[tuple[int, int, int]]] = {}
    for (shndx, start), (_size, name_i, file_i) in best.items():
        by_section.setdefault(shndx, []).append((start, name_i, file_i))
    sec_lo: list[int] = []
    rows: list[tuple[int, int, int]] = []
    for _start, _end, index in alloc:
        sec_lo.append(len(rows))
        rows += sorted(by_section.get(index, ()))
    sec_lo.append(len(rows))
    tables = {
        "sec_start": u64([a[0] for a in alloc]),
        "sec_end": u64([a[1] for a in alloc]),
        "sec_lo": u32(sec_lo),
        "sym_start": u64([r[0] for r in rows]),
        "sym_name": u32([r[1] for r in rows]),
        "sym_file": u32([r[2] for r in rows]),
    }
    return tables, sorted(funcs)


class SymCacheView:
    """Read-only view of a symbolic SymCache, format version 9 (symbolic 12-13)."""

    def __init__(self, blob: memoryview, where: Path) -> None:
        if len(blob) < 80 or bytes(blob[:4]) != b"SYMC":
            raise DebugInfoError(f"{where}: symbolic produced no SymCache")
        version, nfiles, nfuncs, nlocs, nranges, nstr = struct.unpack_from("<I36x5I", blob, 4)
        if version != 9:
            raise DebugInfoError(f"{where}: unsupported SymCache format v{version} (need v9)")
        funcs = (80 + 24 * nfiles + 7) & ~7
        locs = (funcs + 16 * nfuncs + 7) & ~7
        ranges = (locs + 16 * nlocs + 7) & ~7
        strings = (ranges + 4 * nranges + 7) & ~7
        if strings + nstr > len(blob) or nranges > nlocs:
            raise DebugInfoError(f"{where}: truncated SymCache")
        self.function_count = nfuncs
        self.files = blob[80 : 80 + 24 * nfiles].cast("I")  # comp_dir, directory, name, ...
        self.functions = blob[funcs : funcs + 16 * nfuncs].cast("I")  # name, -, entry, lang
        self.locations = blob[locs : locs + 16 * nlocs].cast("I")  # file, line, func, caller
        self.ranges = blob[ranges : ranges + 4 * nranges].cast("I")
        self.range_base = nlocs - nranges
        self.strings = blob[strings : strings + nstr]

    def string(self, offset: int) -> str | None:
        """The string at ``offset`` (LEB128 length + UTF-8), None for NONE."""
        if offset >= len(self.strings):
            return None
        length = shift = 0
        while True:
            byte = self.strings[offset]
            offset += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        return bytes(self.strings[offset : offset + length]).decode("utf-8", "replace")


def _uleb(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


class DwarfUnit:
    """Just enough of a DWARF unit to read the attributes of its DIEs in order."""

    def __init__(self, info: bytes, pos: int, abbrev: bytes) -> None:
        length = struct.unpack_from("<I", info, pos)[0]
        self.offset_size, pos = (8, pos + 12) if length == 0xFFFFFFFF else (4, pos + 4)
        if self.offset_size == 8:
            length = struct.unpack_from("<Q", info, pos - 8)[0]
        self.end = pos + length
        self.version = struct.unpack_from("<H", info, pos)[0]
        fmt = "<Q" if self.offset_size == 8 else "<I"
        if self.version >= 5:
            kind, self.addr_size = info[pos + 2], info[pos + 3]
            abbrev_off = struct.unpack_from(fmt, info, pos + 4)[0]
            self.pos = pos + 4 + self.offset_size + (8 if kind in (4, 5) else 0)
            self.ok = kind in (1, 3)
        else:
            abbrev_off = struct.unpack_from(fmt, info, pos + 2)[0]
            self.addr_size = info[pos + 2 + self.offset_size]
            self.pos, self.ok = pos + 3 + self.offset_size, self.version >= 2
        self.info, self.abbrevs = info, _Abbrevs(abbrev, abbrev_off)

    def die(self) -> tuple[int, dict[int, tuple[int, Any]]] | None:
        """(tag, {attribute: (form, value)}) of the next DIE (tag 0: null entry); None at end."""
        if self.pos >= self.end:
            return None
        code, self.pos = _uleb(self.info, self.pos)
        if code == 0:
            return 0, {}
        tag, specs = self.abbrevs[code]
        return tag, {attr: (form, self._value(form, const)) for attr, form, const in specs}

    def _value(self, form: int, const: int) -> Any:
        info, pos = self.info, self.pos
        if form == 0x16:  # indirect
            form, pos = _uleb(info, pos)
            self.pos = pos
            return self._value(form, const)
        if form == 0x21:
            return const
        if form == 0x08:  # string
            end = info.index(b"\0", pos)
            self.pos = end + 1
            return info[pos:end]
        size = _FIXED_FORMS.get(form)
        if form == 0x01 or (form == 0x10 and self.version == 2):
            size = self.addr_size
        elif form in _OFFSET_FORMS:
            size = self.offset_size
        if size is not None:
            self.pos = pos + size
            return int.from_bytes(info[pos : pos + size], "little")
        if form in _LEB_FORMS:
            value, self.pos = _uleb(info, pos)
            return value
        length_size = {0x03: 2, 0x04: 4, 0x0A: 1}.get(form)
        if length_size is not None:
            length = int.from_bytes(info[pos : pos + length_size], "little")
            self.pos = pos + length_size + length
        elif form in (0x09, 0x18):  # block, exprloc
            length, pos = _uleb(info, pos)
            self.pos = pos + length
        else:
            raise ValueError(f"DWARF form {form:#x}")
        return None


class _Abbrevs:
    """An abbreviation table, parsed only as far as the codes asked for."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos
        self.table: dict[int, tuple[int, list[tuple[int, int, int]]]] = {}

    def __getitem__(self, code: int) -> tuple[int, list[tuple[int, int, int]]]:
        data, pos = self.data, self.pos
        while code not in self.table:
            found, pos = _uleb(data, pos)
            if found == 0:
                raise KeyError(code)
            tag, pos = _uleb(data, pos)
            pos += 1  # has_children
            specs = []
            while True:
                attr, pos = _uleb(data, pos)
                form, pos = _uleb(data, pos)
                const = 0
                if form == 0x21:  # implicit_const (signed; only its length matters here)
                    const, pos = _uleb(data, pos)
                if attr == 0 and form == 0:
                    break
                specs.append((attr, form, const))
            self.table[found] = (tag, specs)
            self.pos = pos
        return self.table[code]


def unit_offsets(aranges: bytes, addresses: list[int]) -> list[int] | None:
    """.debug_info offsets of the units whose .debug_aranges cover ``addresses``."""
    spans: list[tuple[int, int, int]] = []
    pos = 0
    while pos + 16 <= len(aranges):
        length, unit_start = struct.unpack_from("<I", aranges, pos)[0], pos
        offset_size, pos = (8, pos + 12) if length == 0xFFFFFFFF else (4, pos + 4)
        if offset_size == 8:
            length = struct.unpack_from("<Q", aranges, pos - 8)[0]
        end = pos + length
        info_off = struct.unpack_from("<Q" if offset_size == 8 else "<I", aranges, pos + 2)[0]
        addr_size = aranges[pos + 2 + offset_size]
        tuple_size = 2 * addr_size
        pos = unit_start + -(-(pos + 4 + offset_size - unit_start) // tuple_size) * tuple_size
        fmt = "<QQ" if addr_size == 8 else "<II"
        while pos + tuple_size <= end:
            start, size = struct.unpack_from(fmt, aranges, pos)
            pos += tuple_size
            if start == size == 0:
                break
            spans.append((start, start + size, info_off))
        pos = end
    if not spans:
        return None
    spans.sort()
    starts = [span[0] for span in spans]
    found = set()
    for address in addresses:
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and address < spans[i][1]:
            found.add(spans[i][2])
    return sorted(found)


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def serialize(tables: Tables, build_id: str) -> bytes:
    """The on-disk form of ``tables`` for ``build_id``."""
    blobs = [bytes(getattr(tables, name).cast("B")) for name, _ in _SECTIONS]
    start = _pad8(_HEADER.size) + _pad8(_ENTRY.size * len(blobs))
    entries, body = bytearray(), bytearray()
    for blob in blobs:
        entries += _ENTRY.pack(start + len(body), len(blob))
        body += blob + bytes(_pad8(len(blob)) - len(blob))
    rest = bytes(entries.ljust(start - _pad8(_HEADER.size), b"\0") + body)
    flags = _FLAG_DWARF5 if tables.dwarf5 else 0
    id_raw = build_id.encode("ascii")
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(blobs), zlib.crc32(rest), flags,
                          tables.load_address, len(id_raw), id_raw)  # fmt: skip
    return header.ljust(_pad8(_HEADER.size), b"\0") + rest


def deserialize(data: memoryview, build_id: str) -> Tables | None:
    """Tables from a cache file's bytes, or None if it is not a valid entry for ``build_id``."""
    head = _pad8(_HEADER.size)
    if len(data) < head:
        return None
    magic, version, count, crc, flags, load, id_len, id_raw = _HEADER.unpack_from(data)
    if (magic, version, count) != (MAGIC, FORMAT_VERSION, len(_SECTIONS)):
        return None
    if id_raw[:id_len] != build_id.encode("ascii") or zlib.crc32(data[head:]) != crc:
        return None
    views: dict[str, memoryview] = {}
    for i, (name, fmt) in enumerate(_SECTIONS):
        off, length = _ENTRY.unpack_from(data, head + i * _ENTRY.size)
        if off + length > len(data) or off % 8 or length % struct.calcsize(fmt):
            return None
        view = data[off : off + length]
        views[name] = view.cast("Q") if fmt == "Q" else view.cast("I") if fmt == "I" else view
    return Tables(**views, load_address=load, dwarf5=bool(flags & _FLAG_DWARF5))


def load(cache_dir: Path, build_id: str) -> Tables | None:
    """The cached tables of ``build_id``, or None when absent, foreign or damaged."""
    try:
        with cache_file(cache_dir, build_id).open("rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    return deserialize(memoryview(mapped), build_id)


def store(cache_dir: Path, build_id: str, tables: Tables) -> None:
    """Write ``tables`` as the entry of ``build_id``, atomically; errors are ignored."""
    path = cache_file(cache_dir, build_id)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(serialize(tables, build_id))
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

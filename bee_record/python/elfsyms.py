"""The few ELF facts CPython detection needs: dynamic symbols and loadable segments.

Lean on purpose (stdlib struct, bounded reads): it looks up a handful of names in
`.dynsym` (falling back to `.symtab`) of a 64-bit little-endian ELF file and maps virtual
addresses to file offsets. Malformed files give empty answers, never exceptions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

SHT_SYMTAB = 2
SHT_DYNSYM = 11
PT_LOAD = 1
_MAX_HEADERS = 4096
_MAX_SYMTAB_BYTES = 64 << 20
_MAX_STRTAB_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Load:
    """One PT_LOAD segment."""

    offset: int
    vaddr: int
    filesz: int
    memsz: int
    flags: int


@dataclass(frozen=True, slots=True)
class ElfFacts:
    """Symbols found (name -> value) and the loadable segments of one file."""

    symbols: dict[str, int]
    loads: tuple[Load, ...]

    def file_offset(self, vaddr: int, size: int) -> int | None:
        """File offset of `size` bytes at `vaddr`, when a segment holds them in the file."""
        for seg in self.loads:
            if seg.vaddr <= vaddr and vaddr + size <= seg.vaddr + seg.filesz:
                return seg.offset + (vaddr - seg.vaddr)
        return None

    def bias(self, start: int, offset: int) -> int | None:
        """Load bias of a mapping of this file at `start` with file offset `offset`."""
        for seg in self.loads:
            if seg.offset <= offset < seg.offset + max(seg.filesz, 1):
                return start - (seg.vaddr + (offset - seg.offset))
        return None


def read_facts(f: BinaryIO, wanted: frozenset[str]) -> ElfFacts:
    """Look up `wanted` symbol names and read the PT_LOAD segments of an open file."""
    try:
        return _read(f, wanted)
    except (OSError, struct.error, ValueError, OverflowError, MemoryError):
        return ElfFacts({}, ())


def _read(f: BinaryIO, wanted: frozenset[str]) -> ElfFacts:
    head = f.read(64)
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return ElfFacts({}, ())
    phoff, shoff = struct.unpack_from("<QQ", head, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 54)
    if phnum > _MAX_HEADERS or shnum > _MAX_HEADERS or phentsize < 56 or shentsize < 64:
        return ElfFacts({}, ())
    loads = []
    f.seek(phoff)
    raw = f.read(phentsize * phnum)
    for i in range(len(raw) // phentsize):
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz = struct.unpack_from(
            "<IIQQQQQ", raw, i * phentsize)
        if p_type == PT_LOAD:
            loads.append(Load(p_offset, p_vaddr, p_filesz, p_memsz, p_flags))
    f.seek(shoff)
    raw = f.read(shentsize * shnum)
    sections = [struct.unpack_from("<IIQQQQII", raw, i * shentsize)
                for i in range(len(raw) // shentsize)]
    found: dict[str, int] = {}
    for kind in (SHT_DYNSYM, SHT_SYMTAB):
        for _name, sh_type, _, _, sh_offset, sh_size, sh_link, _ in sections:
            if sh_type != kind or sh_link >= len(sections):
                continue
            link = sections[sh_link]
            _scan(f, sh_offset, min(sh_size, _MAX_SYMTAB_BYTES), link[4],
                  min(link[5], _MAX_STRTAB_BYTES), wanted, found)
        if len(found) == len(wanted):
            break
    return ElfFacts(found, tuple(loads))


def _scan(f: BinaryIO, offset: int, size: int, str_offset: int, str_size: int,
          wanted: frozenset[str], found: dict[str, int]) -> None:
    f.seek(offset)
    table = f.read(size)
    f.seek(str_offset)
    strings = f.read(str_size)
    needles = {name.encode() + b"\0" for name in wanted if name not in found}
    for st_name, _info, _other, shndx, value, _size in struct.iter_unpack(
            "<IBBHQQ", table[: len(table) // 24 * 24]):
        if not shndx or not value or st_name >= len(strings):
            continue
        end = strings.find(b"\0", st_name)
        if end < 0:
            continue
        name = strings[st_name:end + 1]
        if name in needles:
            found.setdefault(name[:-1].decode(), value)

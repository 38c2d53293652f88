"""The few ELF facts CPython detection needs: dynamic symbols and loadable segments.

Read through the contract's ELF basics (:mod:`bee_contract.elf`, a mapped file): it looks
up a handful of names in `.dynsym` (falling back to `.symtab`) of a 64-bit little-endian ELF
file and maps virtual addresses to file offsets. Malformed files give empty answers, never
exceptions.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bee_contract.elf import PT_LOAD, SHT_DYNSYM, SHT_SYMTAB, ElfImage, symbol_entries
from bee_contract.errors import ElfError

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
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # empty, or not a regular file
        return ElfFacts({}, ())
    try:
        with ElfImage(Path("<elf>"), buf) as image:
            return _read(image, wanted)
    except (ElfError, ValueError, OverflowError, MemoryError):
        return ElfFacts({}, ())


def _read(image: ElfImage, wanted: frozenset[str]) -> ElfFacts:
    if not image.is_64 or not image.little_endian:
        return ElfFacts({}, ())
    loads = tuple(Load(p.offset, p.vaddr, p.filesz, p.memsz, p.flags)
                  for p in image.segments if p.p_type == PT_LOAD)
    sections = image.sections
    found: dict[str, int] = {}
    for kind in (SHT_DYNSYM, SHT_SYMTAB):
        for sec in sections:
            if sec.sh_type != kind or sec.link >= len(sections):
                continue
            strtab = sections[sec.link]
            if sec.size > _MAX_SYMTAB_BYTES or strtab.size > _MAX_STRTAB_BYTES:
                continue
            _scan(image.section_bytes(sec), image.section_bytes(strtab), wanted, found)
        if len(found) == len(wanted):
            break
    return ElfFacts(found, loads)


def _scan(table: bytes, strings: bytes, wanted: frozenset[str], found: dict[str, int]) -> None:
    needles = {name.encode() + b"\0" for name in wanted if name not in found}
    for st_name, value, _size, _info, _other, shndx in symbol_entries(
            table, is_64=True, little_endian=True, entsize=24):
        if not shndx or not value or st_name >= len(strings):
            continue
        end = strings.find(b"\0", st_name)
        if end < 0:
            continue
        name = strings[st_name:end + 1]
        if name in needles:
            found.setdefault(name[:-1].decode(), value)

"""ELF header constants, struct layouts, and the program and section header tables.

:class:`ElfLayout` holds the :mod:`struct` formats of one ELF class and byte order;
:func:`parse_segments` and :func:`parse_sections` decode the program header table into
:class:`Segment` rows and the section header table into :class:`Section` rows (names
resolved from .shstrtab). They are used by :class:`bee_report.elf.elffile.ElfFile`, which passes
in its bounds check and error factory, so malformed tables raise
:class:`~bee_report.elf.symbols.ElfError` naming the file.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bee_contract.errors import ElfError

__all__ = [
    "ET_CORE",
    "ET_DYN",
    "ET_EXEC",
    "ET_REL",
    "PN_XNUM",
    "PT_LOAD",
    "PT_NOTE",
    "SHN_XINDEX",
    "SHT_DYNSYM",
    "SHT_NOBITS",
    "SHT_NOTE",
    "SHT_SYMTAB",
    "SHT_SYMTAB_SHNDX",
    "ElfLayout",
    "ErrorFactory",
    "RangeCheck",
    "Section",
    "Segment",
    "parse_sections",
    "parse_segments",
]

ET_REL: Final = 1
ET_EXEC: Final = 2
ET_DYN: Final = 3
ET_CORE: Final = 4

PT_LOAD: Final = 1
PT_NOTE: Final = 4

SHT_SYMTAB: Final = 2
SHT_NOTE: Final = 7
SHT_NOBITS: Final = 8
SHT_DYNSYM: Final = 11
SHT_SYMTAB_SHNDX: Final = 18

SHN_XINDEX: Final = 0xFFFF
PN_XNUM: Final = 0xFFFF

ErrorFactory = Callable[[str], ElfError]
"""Turns a problem description into an ElfError naming the file (``ElfFile._error``)."""

RangeCheck = Callable[[str, int, int], None]
"""Raises unless ``(what, offset, size)`` lies inside the file (``ElfFile._range``)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One program header (``readelf -lW`` row). ``flags`` is p_flags (PF_X=1, W=2, R=4)."""

    p_type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int = 0


@dataclass(frozen=True, slots=True)
class Section:
    """One section header (``readelf -SW`` row); ``name`` is resolved from .shstrtab."""

    name: str
    sh_type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    addralign: int = 0


class ElfLayout:
    """struct formats for one ELF class and byte order."""

    def __init__(self, is_64: bool, little_endian: bool) -> None:
        e = "<" if little_endian else ">"
        w = "Q" if is_64 else "I"
        self.is_64 = is_64
        self.ehdr = struct.Struct(e + ("HHIQQQIHHHHHH" if is_64 else "HHIIIIIHHHHHH"))
        # Normalised below to (type, flags, offset, vaddr, paddr, filesz, memsz, align).
        self.phdr = struct.Struct(e + ("IIQQQQQQ" if is_64 else "IIIIIIII"))
        self.shdr = struct.Struct(e + "II" + w * 4 + "II" + w * 2)
        self.chdr = struct.Struct(e + ("IIQQ" if is_64 else "III"))
        self.u32 = struct.Struct(e + "I")
        self.note = struct.Struct(e + "III")


def parse_segments(
    buf: bytes | mmap.mmap,
    lay: ElfLayout,
    phoff: int,
    phentsize: int,
    phnum: int,
    *,
    check_range: RangeCheck,
    error: ErrorFactory,
) -> tuple[Segment, ...]:
    """The ``phnum`` program headers at ``phoff`` in ``buf``, in file order."""
    if phnum == 0:
        return ()
    if phentsize < lay.phdr.size:
        raise error(f"program header entry size {phentsize} too small")
    check_range(f"program header table ({phnum} entries)", phoff, phnum * phentsize)
    out = []
    for i in range(phnum):
        f = lay.phdr.unpack_from(buf, phoff + i * phentsize)
        if lay.is_64:
            p_type, flags, off, vaddr, _pa, filesz, memsz, align = f
        else:
            p_type, off, vaddr, _pa, filesz, memsz, flags, align = f
        out.append(Segment(p_type, flags, off, vaddr, filesz, memsz, align))
    return tuple(out)


def parse_sections(
    buf: bytes | mmap.mmap,
    lay: ElfLayout,
    shoff: int,
    shentsize: int,
    shnum: int,
    shstrndx: int,
    *,
    check_range: RangeCheck,
    error: ErrorFactory,
) -> tuple[Section, ...]:
    """The ``shnum`` section headers at ``shoff`` in ``buf``, indexed like st_shndx."""
    if shnum == 0:
        return ()
    check_range(f"section header table ({shnum} entries)", shoff, shnum * shentsize)
    rows = [lay.shdr.unpack_from(buf, shoff + i * shentsize) for i in range(shnum)]
    names = b""
    if shstrndx:
        if shstrndx >= shnum:
            raise error(f"section name table index {shstrndx} out of range")
        strsec = rows[shstrndx]
        if strsec[1] != SHT_NOBITS:
            check_range("section name table", strsec[4], strsec[5])
            names = buf[strsec[4] : strsec[4] + strsec[5]]
    out = []
    for i, (name_off, typ, flags, addr, off, size, link, info, align, entsize) in enumerate(rows):
        name: str | None = c_string(names, name_off) if names else ""
        if name is None:
            raise error(f"section {i}: bad name offset {name_off:#x}")
        out.append(Section(name, typ, flags, addr, off, size, link, info, entsize, align))
    return tuple(out)

def c_string(table: bytes, offset: int) -> str | None:
    """The NUL-terminated string at ``offset`` in ``table``, or None if out of range."""
    if offset < 0 or offset >= len(table):
        return None
    end = table.find(b"\0", offset)
    if end < 0:
        return None
    return table[offset:end].decode("utf-8", "backslashreplace")

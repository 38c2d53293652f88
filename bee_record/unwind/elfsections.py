"""Just enough ELF to find the sections and loadable segments the unwinder needs.

Reads the section and program headers of a 64-bit little-endian ELF file (the targets the
unwinder supports) and returns section contents on demand. Anything malformed raises
ValueError; callers treat that as "no unwind table for this file".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

_MAX_HEADERS = 1 << 16
_MAX_SECTION = 512 << 20
EM_X86_64 = 62
EM_AARCH64 = 183
PT_LOAD = 1
SHT_NOBITS = 8


@dataclass(frozen=True, slots=True)
class Section:
    """One section header: name, file offset, size and address."""

    name: str
    type: int
    addr: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Segment:
    """One PT_LOAD program header."""

    offset: int
    vaddr: int
    filesz: int
    flags: int


@dataclass(frozen=True, slots=True)
class ElfInfo:
    """Machine, sections (by name) and loadable segments of an ELF file."""

    machine: int
    sections: dict[str, Section]
    loads: tuple[Segment, ...]


def read_info(f: BinaryIO) -> ElfInfo:
    """Parse the headers of an ELF64 little-endian file; ValueError when it is not one."""
    ident = f.read(64)
    if len(ident) < 64 or ident[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    if ident[4] != 2 or ident[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    machine = struct.unpack_from("<H", ident, 18)[0]
    phoff, shoff = struct.unpack_from("<QQ", ident, 32)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", ident, 54)
    if phnum > _MAX_HEADERS or shnum > _MAX_HEADERS:
        raise ValueError("too many headers")
    loads = []
    if phoff and phnum and phentsize >= 56:
        f.seek(phoff)
        raw = f.read(phentsize * phnum)
        for i in range(len(raw) // phentsize):
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                "<IIQQQQ", raw, i * phentsize)
            if p_type == PT_LOAD:
                loads.append(Segment(p_offset, p_vaddr, p_filesz, p_flags))
    sections: dict[str, Section] = {}
    if shoff and shnum and shentsize >= 64 and shstrndx < shnum:
        f.seek(shoff)
        raw = f.read(shentsize * shnum)
        heads = []
        for i in range(len(raw) // shentsize):
            name, sh_type, _, addr, offset, size = struct.unpack_from("<IIQQQQ", raw,
                                                                       i * shentsize)
            heads.append((name, sh_type, addr, offset, size))
        if shstrndx < len(heads):
            _, _, _, stroff, strsize = heads[shstrndx]
            f.seek(stroff)
            names = f.read(min(strsize, 1 << 20))
            for name, sh_type, addr, offset, size in heads:
                end = names.find(b"\0", name)
                text = names[name:end if end >= 0 else None].decode("ascii", "replace")
                sections.setdefault(text, Section(text, sh_type, addr, offset, size))
    return ElfInfo(machine, sections, tuple(loads))


def read_section(f: BinaryIO, section: Section) -> bytes:
    """Contents of a section (empty for SHT_NOBITS); ValueError when truncated or huge."""
    if section.type == SHT_NOBITS or section.size == 0:
        return b""
    if section.size > _MAX_SECTION:
        raise ValueError(f"section {section.name} is too large")
    f.seek(section.offset)
    data = f.read(section.size)
    if len(data) != section.size:
        raise ValueError(f"section {section.name} is truncated")
    return data

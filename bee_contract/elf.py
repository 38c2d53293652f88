"""ELF basics both stages read: headers, program headers, sections by name, notes, and
symbol table entries.

:class:`ElfImage` opens a file (memory-mapped), bytes or an mmap and decodes the ELF
header, the program headers (:class:`Segment`) and the section headers (:class:`Section`,
names resolved from .shstrtab); it looks sections up by name, hands out their raw bytes
and iterates notes (:func:`iter_notes`). ELF32/ELF64 in both byte orders. Every input is
untrusted: a malformed structure raises :class:`~bee_contract.errors.ElfError` naming
the file, never a lower-level exception. Standard library only.

:class:`ElfLayout` holds the :mod:`struct` formats of one ELF class and byte order;
:func:`parse_segments` and :func:`parse_sections` decode the two header tables, with the
caller's bounds check and error factory.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from bee_contract.errors import ElfError
from bee_contract.safeopen import open_regular

__all__ = [
    "ET_CORE",
    "ET_DYN",
    "ET_EXEC",
    "ET_REL",
    "MAX_NOTES_BYTES",
    "MAX_SECTION_BYTES",
    "PN_XNUM",
    "PT_LOAD",
    "PT_NOTE",
    "SHN_XINDEX",
    "SHT_DYNSYM",
    "SHT_NOBITS",
    "SHT_NOTE",
    "SHT_SYMTAB",
    "SHT_SYMTAB_SHNDX",
    "ElfImage",
    "ElfLayout",
    "ErrorFactory",
    "Note",
    "RangeCheck",
    "Section",
    "Segment",
    "SymbolEntry",
    "c_string",
    "iter_notes",
    "parse_sections",
    "parse_segments",
    "symbol_entries",
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

MAX_SECTION_BYTES: Final = 1 << 30
"""Largest section (raw or decompressed) a reader hands out."""
MAX_NOTES_BYTES: Final = 1 << 20
"""Larger note sections or segments are skipped (build-id notes are tens of bytes)."""

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


@dataclass(frozen=True, slots=True)
class Note:
    """One ELF note: owner name (without its NUL), type, and descriptor bytes."""

    name: bytes
    n_type: int
    desc: bytes


def iter_notes(data: bytes, little_endian: bool) -> Iterator[Note]:
    """The notes in a block of notes; stops quietly at a truncated or malformed entry.

    Name and descriptor are each padded to 4 bytes, as GNU tools write notes in both ELF
    classes (the gABI's 8-byte ELF64 rule is not what binutils, gold or lld emit).
    """
    header = struct.Struct(("<" if little_endian else ">") + "III")
    pos = 0
    while pos + header.size <= len(data):
        namesz, descsz, n_type = header.unpack_from(data, pos)
        pos += header.size
        desc = pos + ((namesz + 3) & ~3)
        end = desc + descsz
        if end > len(data):
            return
        yield Note(data[pos : pos + namesz].rstrip(b"\0"), n_type, data[desc:end])
        pos = (end + 3) & ~3


class ElfImage:
    """The headers of one ELF file, over bytes or a read-only mapping.

    Attributes: ``path`` (for messages); ``elf_type`` (ET_*), ``machine`` (e_machine),
    ``entry``, ``is_64``, ``little_endian``; ``segments`` (program headers in file
    order); ``sections`` (section headers indexed like st_shndx/sh_link, so
    ``sections[0]`` is the NULL section). Use as a context manager or call :meth:`close`.
    """

    path: Path
    elf_type: int
    machine: int
    entry: int
    is_64: bool
    little_endian: bool
    segments: tuple[Segment, ...]
    sections: tuple[Section, ...]

    def __init__(self, path: Path, buf: bytes | mmap.mmap) -> None:
        """Parse ``buf``; prefer :meth:`open` / :meth:`from_bytes`. Raises ElfError."""
        self.path = path
        self._buf: bytes | mmap.mmap = buf
        self._size = len(buf)
        self._closed = False
        self._by_name: dict[str, Section] = {}
        try:
            self._parse()
            self._parsed()
        except ElfError:
            self.close()
            raise
        except (struct.error, ValueError, IndexError, OverflowError, MemoryError) as exc:
            self.close()
            raise self._error(f"malformed ELF ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Self:
        """Memory-map ``path`` read-only and parse it; raises ElfError on any failure.

        The file is opened with :func:`~bee_contract.safeopen.open_regular`: FIFOs,
        devices and kernel pseudo files that a recording or a process put in place are
        refused, never opened.
        """
        p = Path(path)
        try:
            with open_regular(p) as f:
                if os.fstat(f.fileno()).st_size == 0:
                    raise ElfError(f"{p}: not an ELF file (empty)")
                buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ElfError(f"{p}: cannot open: {exc.strerror or exc}") from exc
        except ValueError as exc:  # mmap of something that is not a regular file
            raise ElfError(f"{p}: cannot map: {exc}") from exc
        return cls(p, buf)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, name: str) -> Self:
        """Parse an ELF image held in memory; ``name`` is used as :attr:`path` in messages."""
        return cls(Path(name), bytes(data))

    def close(self) -> None:
        """Release the mapping. Further reads raise ElfError. Idempotent."""
        if not self._closed:
            self._closed = True
            if isinstance(self._buf, mmap.mmap):
                self._buf.close()
            self._buf = b""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def section(self, name: str) -> Section | None:
        """The first section called ``name``, or None."""
        return self._by_name.get(name)

    def section_bytes(self, section: Section) -> bytes:
        """The raw bytes of ``section`` in the file (``b""`` for NOBITS); raises ElfError
        when they lie outside the file or exceed :data:`MAX_SECTION_BYTES`."""
        self._check_open()
        if section.sh_type == SHT_NOBITS:
            return b""
        if section.size > MAX_SECTION_BYTES:
            raise self._error(f"section {section.name}: {section.size} bytes is too large "
                              f"(limit {MAX_SECTION_BYTES >> 30} GiB)")
        self._range(f"section {section.name}", section.offset, section.size)
        return self._buf[section.offset : section.offset + section.size]

    def notes(self) -> Iterator[Note]:
        """Notes of the SHT_NOTE sections, then of the PT_NOTE segments; areas outside the
        file or larger than :data:`MAX_NOTES_BYTES` are skipped."""
        self._check_open()
        areas = [(s.offset, s.size) for s in self.sections if s.sh_type == SHT_NOTE]
        areas += [(p.offset, p.filesz) for p in self.segments if p.p_type == PT_NOTE]
        for off, size in areas:
            if off < 0 or size <= 0 or off + size > self._size or size > MAX_NOTES_BYTES:
                continue
            yield from iter_notes(self._buf[off : off + size], self.little_endian)

    def _parsed(self) -> None:
        """Hook for subclasses: read more once the headers are parsed (same error rules)."""

    def _error(self, problem: str) -> ElfError:
        return ElfError(f"{self.path}: {problem}")

    def _check_open(self) -> None:
        if self._closed:
            raise self._error("file is closed")

    def _range(self, what: str, offset: int, size: int) -> None:
        if offset < 0 or size < 0 or offset + size > self._size:
            raise self._error(
                f"{what} at offset {offset:#x} size {size:#x} lies outside the file "
                f"({self._size:#x} bytes)"
            )

    def _parse(self) -> None:
        buf = self._buf
        if len(buf) < 16 or buf[:4] != b"\x7fELF":
            raise self._error("not an ELF file")
        ei_class, ei_data = buf[4], buf[5]
        if ei_class not in (1, 2):
            raise self._error(f"unknown ELF class {ei_class}")
        if ei_data not in (1, 2):
            raise self._error(f"unknown ELF data encoding {ei_data}")
        self.is_64 = ei_class == 2
        self.little_endian = ei_data == 1
        lay = self._lay = ElfLayout(self.is_64, self.little_endian)
        self._range("ELF header", 16, lay.ehdr.size)
        (self.elf_type, self.machine, _version, self.entry, phoff, shoff, _flags, _ehsize,
         phentsize, phnum, shentsize, shnum, shstrndx) = lay.ehdr.unpack_from(buf, 16)
        sec0: tuple[int, ...] | None = None
        if shoff:
            if shentsize < lay.shdr.size:
                raise self._error(f"section header entry size {shentsize} too small")
            self._range("section header 0", shoff, lay.shdr.size)
            sec0 = lay.shdr.unpack_from(buf, shoff)
            if shnum == 0:
                shnum = sec0[5]  # real count in sh_size of section 0
            if shstrndx == SHN_XINDEX:
                shstrndx = sec0[6]  # real index in sh_link
        if phnum == PN_XNUM and sec0 is not None:
            phnum = sec0[7]  # real count in sh_info
        rng, err = self._range, self._error
        self.segments = parse_segments(buf, lay, phoff, phentsize, phnum,
                                       check_range=rng, error=err)
        self.sections = parse_sections(buf, lay, shoff, shentsize, shnum if shoff else 0,
                                       shstrndx, check_range=rng, error=err)
        for sec in self.sections:
            self._by_name.setdefault(sec.name, sec)


SymbolEntry = tuple[int, int, int, int, int, int]
"""One symbol table entry: (st_name, st_value, st_size, st_info, st_other, st_shndx)."""


def symbol_entries(data: bytes, *, is_64: bool, little_endian: bool,
                   entsize: int) -> Iterator[SymbolEntry]:
    """Decode every entry of a symbol table's bytes (entry 0 included), in table order.

    ``entsize`` 0 means the standard size; a smaller one raises ElfError (message without
    the file name; the caller adds it). Trailing bytes short of an entry are ignored.
    """
    sym = struct.Struct(("<" if little_endian else ">") + ("IBBHQQ" if is_64 else "IIIBBH"))
    entsize = entsize or sym.size
    if entsize < sym.size:
        raise ElfError(f"symbol entry size {entsize} too small")
    count = len(data) // entsize
    if entsize == sym.size:
        rows: Iterable[tuple[int, ...]] = sym.iter_unpack(data[: count * entsize])
    else:
        rows = (sym.unpack_from(data, i * entsize) for i in range(count))
    if is_64:
        for name_off, info, other, shndx, value, size in rows:
            yield name_off, value, size, info, other, shndx
    else:
        yield from rows  # type: ignore[misc]  # ELF32 order is already (name, value, size, ...)



def c_string(table: bytes, offset: int) -> str | None:
    """The NUL-terminated string at ``offset`` in ``table``, or None if out of range."""
    if offset < 0 or offset >= len(table):
        return None
    end = table.find(b"\0", offset)
    if end < 0:
        return None
    return table[offset:end].decode("utf-8", "backslashreplace")


def read_uleb128(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned LEB128 number at `pos` (as DWARF and .eh_frame store them) and the
    position after it. ValueError past 10 bytes, IndexError at the end of `data`."""
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("LEB128 too long")


def read_sleb128(data: bytes, pos: int) -> tuple[int, int]:
    """The signed LEB128 number at `pos` and the position after it (errors as above)."""
    result = 0
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if b & 0x40:
                result -= 1 << shift
            return result, pos
        if shift > 70:
            raise ValueError("LEB128 too long")

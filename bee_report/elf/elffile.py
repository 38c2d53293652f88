"""Workstation-side ELF reader for symbolization: headers, sections, notes, symbols.

The file is memory-mapped read-only and decoded with :mod:`struct`; nothing is parsed
with pyelftools (its symbol iteration is 50-100x slower). ELF32/ELF64 in both byte
orders are understood. Every file is treated as untrusted: any malformed structure
(truncation, offsets or counts pointing outside the file, bad compression headers,
non-ELF input) raises :class:`ElfError` with a one-line message naming the file, and
no lower-level exception (IndexError, struct.error, zlib.error, ...) escapes.

This module holds :class:`ElfFile` itself. The pieces it is built from live beside it
and are re-exported here: header constants, :class:`Segment`, :class:`Section` and the
header-table parsers in :mod:`bee_contract.elf`; section decompression, notes,
.gnu_debuglink and .gnu_debugdata in :mod:`bee_report.elf.sections`; symbol lookup
(:class:`FunctionTable`) in :mod:`bee_report.elf.symbols`.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from types import TracebackType
from typing import Final

from bee_contract.elf import (
    ET_CORE,
    ET_DYN,
    ET_EXEC,
    ET_REL,
    PN_XNUM,
    PT_LOAD,
    PT_NOTE,
    SHN_XINDEX,
    SHT_DYNSYM,
    SHT_NOBITS,
    SHT_NOTE,
    SHT_SYMTAB,
    SHT_SYMTAB_SHNDX,
    ElfLayout,
    Section,
    Segment,
    parse_sections,
    parse_segments,
)
from bee_contract.errors import ElfError
from bee_report.elf.sections import (
    ELFCOMPRESS_ZLIB,
    ELFCOMPRESS_ZSTD,
    MAX_SECTION_BYTES,
    NT_GNU_BUILD_ID,
    SHF_COMPRESSED,
    build_id_in_notes,
    parse_debuglink,
    section_contents,
    unpack_debugdata,
)
from bee_report.elf.symbols import (
    FunctionArrays,
    FunctionTable,
    RawSymbol,
    Symbol,
    build_function_table,
    read_function_symbols,
)

__all__ = [
    "ELFCOMPRESS_ZLIB",
    "ELFCOMPRESS_ZSTD",
    "ET_CORE",
    "ET_DYN",
    "ET_EXEC",
    "ET_REL",
    "MAX_SECTION_BYTES",
    "NT_GNU_BUILD_ID",
    "PN_XNUM",
    "PT_LOAD",
    "PT_NOTE",
    "SHF_COMPRESSED",
    "SHN_XINDEX",
    "SHT_DYNSYM",
    "SHT_NOBITS",
    "SHT_NOTE",
    "SHT_SYMTAB",
    "SHT_SYMTAB_SHNDX",
    "ElfError",
    "ElfFile",
    "FunctionArrays",
    "FunctionTable",
    "Section",
    "Segment",
    "Symbol",
]

_PAGE_SIZE: Final = 4096


class ElfFile:
    """A read-only view of one ELF file (memory-mapped, or in memory via ``from_bytes``).

    Headers, section and segment tables, the build-id, the debuglink and the presence of
    DWARF are read eagerly by :meth:`open`; the function table is built on first use of
    :meth:`functions`. Use as a context manager or call :meth:`close`.

    Attributes: ``path``; ``elf_type`` (ET_REL/ET_EXEC/ET_DYN/ET_CORE); ``machine``
    (e_machine); ``is_64``; ``little_endian``; ``segments`` (program headers in file
    order); ``sections`` (section headers indexed like st_shndx/sh_link, so
    ``sections[0]`` is the NULL section); ``build_id`` (lowercase hex NT_GNU_BUILD_ID or
    None); ``debuglink`` ((file name, CRC32) of .gnu_debuglink or None);
    ``has_debug_info`` (a non-empty .debug_info or .zdebug_info with contents).

    The mapping is of a file that may change underneath: a file truncated by someone
    else while mapped can still kill the process with SIGBUS (an mmap limitation).
    """

    path: Path
    elf_type: int
    machine: int
    is_64: bool
    little_endian: bool
    segments: tuple[Segment, ...]
    sections: tuple[Section, ...]
    build_id: str | None
    debuglink: tuple[str, int] | None
    has_debug_info: bool

    def __init__(self, path: Path, buf: bytes | mmap.mmap) -> None:
        """Parse ``buf``; prefer :meth:`open` / :meth:`from_bytes`. Raises ElfError."""
        self.path = path
        self._buf: bytes | mmap.mmap = buf
        self._size = len(buf)
        self._closed = False
        self._functions: FunctionTable | None = None
        self._by_name: dict[str, Section] = {}
        try:
            self._parse()
        except ElfError:
            self.close()
            raise
        except (struct.error, ValueError, IndexError, OverflowError, MemoryError) as exc:
            self.close()
            raise self._error(f"malformed ELF ({type(exc).__name__}: {exc})") from exc

    # ----------------------------------------------------------------- construction

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ElfFile:
        """Memory-map ``path`` read-only and parse it; raises ElfError on any failure."""
        p = Path(path)
        try:
            with p.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    raise ElfError(f"{p}: not an ELF file (empty)")
                buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ElfError(f"{p}: cannot open: {exc.strerror or exc}") from exc
        except ValueError as exc:  # mmap of something that is not a regular file
            raise ElfError(f"{p}: cannot map: {exc}") from exc
        return cls(p, buf)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, name: str) -> ElfFile:
        """Parse an ELF image held in memory; ``name`` is used as :attr:`path` in messages."""
        return cls(Path(name), bytes(data))

    def close(self) -> None:
        """Release the mapping. Further reads raise ElfError. Idempotent."""
        if not self._closed:
            self._closed = True
            if isinstance(self._buf, mmap.mmap):
                self._buf.close()
            self._buf = b""

    def __enter__(self) -> ElfFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ElfFile({str(self.path)!r}, type={self.elf_type}, machine={self.machine})"

    # ------------------------------------------------------------------- public API

    def section(self, name: str) -> Section | None:
        """The first section called ``name``, or None."""
        return self._by_name.get(name)

    def section_data(self, section: Section) -> bytes:
        """Contents of ``section``, decompressed if SHF_COMPRESSED (or legacy .zdebug).

        NOBITS sections give ``b""``. Raises ElfError if the data lies outside the file,
        is (or decompresses to) more than :data:`MAX_SECTION_BYTES`, or is corrupt.
        """
        return section_contents(section, self._raw_section(section), self._lay, self._error)

    def file_offset_to_vaddr(self, offset: int) -> int | None:
        """Virtual address of file ``offset`` via the PT_LOAD whose file range holds it."""
        for seg in self.segments:
            if seg.p_type == PT_LOAD and seg.offset <= offset < seg.offset + seg.filesz:
                return offset - seg.offset + seg.vaddr
        return None

    def load_bias_for(
        self,
        map_start: int,
        map_offset: int,
        *,
        executable: bool | None = None,
        page_size: int = _PAGE_SIZE,
    ) -> int | None:
        """Bias of a process mapping, so that ``elf_vaddr = runtime_addr - bias``.

        ``map_start``/``map_offset`` are a mapping's start address and file offset (as
        in /proc/PID/maps). The PT_LOAD used is the one with the greatest page-aligned
        file offset <= ``map_offset`` whose file range extends past ``map_offset``; this
        handles mappings split by mprotect (RELRO). Two PT_LOADs can share a file page
        (e.g. .rodata and the start of the RELRO data), and then start and offset alone
        are ambiguous: pass ``executable`` (the mapping's ``x`` permission) to consider
        only segments with (or without) PF_X; otherwise the first such segment wins.
        Returns None when no PT_LOAD maps ``map_offset``.
        """
        best: Segment | None = None
        best_base = -1
        for seg in self.segments:
            if seg.p_type != PT_LOAD:
                continue
            if executable is not None and bool(seg.flags & 1) != executable:
                continue
            base = seg.offset - seg.offset % page_size
            end = max(seg.offset + seg.filesz, base + page_size)
            if base <= map_offset < end and base > best_base:
                best, best_base = seg, base
        if best is None:
            return None
        return map_start - map_offset + best.offset - best.vaddr

    def gnu_debugdata(self) -> ElfFile | None:
        """The xz-compressed ELF embedded in ``.gnu_debugdata`` (MiniDebugInfo), or None.

        Each call decompresses anew and returns a new in-memory ElfFile.
        """
        sec = self.section(".gnu_debugdata")
        if sec is None or sec.sh_type == SHT_NOBITS:
            return None
        data = unpack_debugdata(self.section_data(sec), self._error)
        return ElfFile.from_bytes(data, f"{self.path}[.gnu_debugdata]")

    def functions(self) -> FunctionTable:
        """Function symbols of .symtab and .dynsym (see :class:`FunctionTable`); cached."""
        if self._functions is None:
            self._check_open()
            try:
                raw = self._read_symbols()
            except (struct.error, ValueError, IndexError, OverflowError) as exc:
                raise self._error(f"malformed symbol table ({exc})") from exc
            ends = [s.addr + s.size for s in self.sections]
            self._functions = build_function_table(raw, ends)
        return self._functions

    # -------------------------------------------------------------------- internals

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
        (
            self.elf_type,
            self.machine,
            _version,
            _entry,
            phoff,
            shoff,
            _flags,
            _ehsize,
            phentsize,
            phnum,
            shentsize,
            shnum,
            shstrndx,
        ) = lay.ehdr.unpack_from(buf, 16)

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
        self.segments = parse_segments(
            buf, lay, phoff, phentsize, phnum, check_range=rng, error=err
        )
        shnum = shnum if shoff else 0
        self.sections = parse_sections(
            buf, lay, shoff, shentsize, shnum, shstrndx, check_range=rng, error=err
        )
        for sec in self.sections:
            self._by_name.setdefault(sec.name, sec)
        self.build_id = self._find_build_id()
        self.debuglink = self._find_debuglink()
        info = self.section(".debug_info") or self.section(".zdebug_info")
        self.has_debug_info = info is not None and info.sh_type != SHT_NOBITS and info.size > 0

    def _raw_section(self, section: Section) -> bytes:
        self._check_open()
        if section.sh_type == SHT_NOBITS:
            return b""
        if section.size > MAX_SECTION_BYTES:
            raise self._error(f"section {section.name}: {section.size} bytes is too large "
                              f"(limit {MAX_SECTION_BYTES >> 30} GiB)")
        self._range(f"section {section.name}", section.offset, section.size)
        return self._buf[section.offset : section.offset + section.size]

    def _find_build_id(self) -> str | None:
        """NT_GNU_BUILD_ID from SHT_NOTE sections, else PT_NOTE segments; bad notes skipped."""
        areas = [(s.offset, s.size, s.addralign) for s in self.sections if s.sh_type == SHT_NOTE]
        areas += [(p.offset, p.filesz, p.align) for p in self.segments if p.p_type == PT_NOTE]
        for off, size, align in areas:
            if off < 0 or size <= 0 or off + size > self._size or size > (1 << 20):
                continue
            found = build_id_in_notes(self._buf[off : off + size], self._lay, align)
            if found is not None:
                return found
        return None

    def _find_debuglink(self) -> tuple[str, int] | None:
        sec = self.section(".gnu_debuglink")
        if sec is None or sec.sh_type == SHT_NOBITS:
            return None
        return parse_debuglink(self._raw_section(sec), self._lay, self._error)

    def _read_symbols(self) -> list[RawSymbol]:
        """Candidate function symbols, .symtab entries first, in table order."""
        out: list[RawSymbol] = []
        for wanted in (SHT_SYMTAB, SHT_DYNSYM):
            for index, sec in enumerate(self.sections):
                if sec.sh_type == wanted and sec.size:
                    self._read_symtab(index, sec, out)
        return out

    def _read_symtab(self, index: int, sec: Section, out: list[RawSymbol]) -> None:
        data = self._raw_section(sec)  # b"" for NOBITS (.dynsym of a debug file)
        if not data:
            return
        if not 0 < sec.link < len(self.sections):
            raise self._error(f"section {sec.name}: bad string table index {sec.link}")
        strtab = self._raw_section(self.sections[sec.link])
        xindex = None
        for other in self.sections:
            if other.sh_type == SHT_SYMTAB_SHNDX and other.link == index:
                xindex = self._raw_section(other)
                break
        try:
            out += read_function_symbols(
                data,
                strtab,
                is_64=self.is_64,
                little_endian=self.little_endian,
                entsize=sec.entsize,
                section_count=len(self.sections),
                xindex=xindex,
                dynamic=sec.sh_type == SHT_DYNSYM,
            )
        except ElfError as exc:
            raise self._error(f"section {sec.name}: {exc}") from None

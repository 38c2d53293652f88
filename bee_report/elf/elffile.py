"""Workstation-side ELF reader for symbolization: headers, sections, notes, symbols.

The file is memory-mapped read-only and decoded with :mod:`struct`; nothing is parsed
with pyelftools (its symbol iteration is 50-100x slower). ELF32/ELF64 in both byte
orders are understood. Every file is treated as untrusted: any malformed structure
(truncation, offsets or counts pointing outside the file, bad compression headers,
non-ELF input) raises :class:`ElfError` with a one-line message naming the file, and
no lower-level exception (IndexError, struct.error, zlib.error, ...) escapes.

This module holds :class:`ElfFile` itself. The pieces it is built from live beside it:
headers, :class:`Segment`, :class:`Section` and notes in :mod:`bee_contract.elf` (its
base class :class:`~bee_contract.elf.ElfImage`); build-ids in :mod:`bee_contract.buildid`;
section decompression, .gnu_debuglink and .gnu_debugdata in
:mod:`bee_report.elf.sections`; symbol lookup (:class:`FunctionTable`) in
:mod:`bee_report.elf.symbols`.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bee_contract.buildid import build_id_of_image
from bee_contract.elf import (
    PT_LOAD,
    SHT_DYNSYM,
    SHT_NOBITS,
    SHT_SYMTAB,
    SHT_SYMTAB_SHNDX,
    ElfImage,
    Section,
    Segment,
)
from bee_contract.errors import ElfError
from bee_report.elf.sections import (
    parse_debuglink,
    section_contents,
    unpack_debugdata,
)

if TYPE_CHECKING:  # imported when a symbol table is read (a warm report reads none)
    from bee_report.elf.symbols import FunctionTable, RawSymbol

__all__ = ["ElfFile"]

_PAGE_SIZE: Final = 4096


class ElfFile(ElfImage):
    """A read-only view of one ELF file for symbolization (memory-mapped, or in memory via
    ``from_bytes``): :class:`~bee_contract.elf.ElfImage` plus decompressed sections, the
    build-id, the debuglink, DWARF presence and the function table.

    Headers, section and segment tables, the build-id, the debuglink and the presence of
    DWARF are read eagerly by :meth:`open`; the function table is built on first use of
    :meth:`functions`. Use as a context manager or call :meth:`close`.

    Attributes (besides ElfImage's): ``build_id`` (lowercase hex NT_GNU_BUILD_ID or
    None); ``debuglink`` ((file name, CRC32) of .gnu_debuglink or None);
    ``has_debug_info`` (a non-empty .debug_info or .zdebug_info with contents).

    The mapping is of a file that may change underneath: a file truncated by someone
    else while mapped can still kill the process with SIGBUS (an mmap limitation).
    """

    build_id: str | None
    debuglink: tuple[str, int] | None
    has_debug_info: bool

    def __init__(self, path: Path, buf: bytes | mmap.mmap) -> None:
        """Parse ``buf``; prefer :meth:`open` / :meth:`from_bytes`. Raises ElfError."""
        self._functions: FunctionTable | None = None
        super().__init__(path, buf)

    def __repr__(self) -> str:
        return f"ElfFile({str(self.path)!r}, type={self.elf_type}, machine={self.machine})"

    # ------------------------------------------------------------------- public API

    def section_data(self, section: Section) -> bytes:
        """Contents of ``section``, decompressed if SHF_COMPRESSED (or legacy .zdebug).

        NOBITS sections give ``b""``. Raises ElfError if the data lies outside the file,
        is (or decompresses to) more than :data:`MAX_SECTION_BYTES`, or is corrupt.
        """
        return section_contents(section, self.section_bytes(section), self._lay, self._error)

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
            from bee_report.elf.symbols import build_function_table

            self._check_open()
            try:
                raw = self._read_symbols()
            except (struct.error, ValueError, IndexError, OverflowError) as exc:
                raise self._error(f"malformed symbol table ({exc})") from exc
            ends = [s.addr + s.size for s in self.sections]
            self._functions = build_function_table(raw, ends)
        return self._functions

    # -------------------------------------------------------------------- internals

    def _parsed(self) -> None:
        self.build_id = build_id_of_image(self)
        self.debuglink = self._find_debuglink()
        info = self.section(".debug_info") or self.section(".zdebug_info")
        self.has_debug_info = info is not None and info.sh_type != SHT_NOBITS and info.size > 0

    def _find_debuglink(self) -> tuple[str, int] | None:
        sec = self.section(".gnu_debuglink")
        if sec is None or sec.sh_type == SHT_NOBITS:
            return None
        return parse_debuglink(self.section_bytes(sec), self._lay, self._error)

    def _read_symbols(self) -> list[RawSymbol]:
        """Candidate function symbols, .symtab entries first, in table order."""
        out: list[RawSymbol] = []
        for wanted in (SHT_SYMTAB, SHT_DYNSYM):
            for index, sec in enumerate(self.sections):
                if sec.sh_type == wanted and sec.size:
                    self._read_symtab(index, sec, out)
        return out

    def _read_symtab(self, index: int, sec: Section, out: list[RawSymbol]) -> None:
        from bee_report.elf.symbols import read_function_symbols

        data = self.section_bytes(sec)  # b"" for NOBITS (.dynsym of a debug file)
        if not data:
            return
        if not 0 < sec.link < len(self.sections):
            raise self._error(f"section {sec.name}: bad string table index {sec.link}")
        strtab = self.section_bytes(self.sections[sec.link])
        xindex = None
        for other in self.sections:
            if other.sh_type == SHT_SYMTAB_SHNDX and other.link == index:
                xindex = self.section_bytes(other)
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

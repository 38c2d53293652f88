"""The ELF image handed to symbolic: debug sections checked and inflated by bee first.

symbolic inflates compressed sections itself, trusting their declared sizes (a section
claiming 1 TiB aborts the process on a failed allocation; a real 4 GiB one costs its size
in RSS), and silently drops DWARF whose sections lie outside the file. So before symbolic
sees an image, :func:`symbolic_image` reads every ``.debug_*``/``.zdebug_*`` section
through :meth:`bee_report.elf.elffile.ElfFile.section_data`, which applies bee's limits
(:data:`bee_report.elf.sections.MAX_SECTION_BYTES` each, :data:`MAX_DWARF_BYTES` together)
and names the section it refuses; compressed sections are replaced by their inflated bytes
appended to the image (headers rewritten: new offset and size, SHF_COMPRESSED cleared,
``.zdebug_x`` renamed ``.debug_x``), so symbolic only ever reads plain, bounded data.
Function symbols are hidden as well (:func:`bee_report.dwarf.symbol_facts.hide_function_symbols`).
"""

from __future__ import annotations

from typing import Final

from bee_contract.elf import MAX_SECTION_BYTES, SHT_NOBITS, ElfLayout
from bee_contract.errors import ElfError
from bee_report.dwarf.symbol_facts import hide_function_symbols
from bee_report.elf.elffile import ElfFile
from bee_report.elf.sections import SHF_COMPRESSED

__all__ = ["MAX_DWARF_BYTES", "symbolic_image"]

MAX_DWARF_BYTES: Final = 2 << 30
"""Most bytes of DWARF sections (after inflating) one debug file may hand symbolic."""


def _is_debug(name: str) -> bool:
    return name.startswith((".debug_", ".zdebug_"))


def symbolic_image(raw: bytes, elf: ElfFile) -> bytes:
    """``raw`` (the bytes of ``elf``) as symbolic may read it; raises ElfError naming the
    section that lies outside the file, is too large or does not inflate."""
    lay = ElfLayout(elf.is_64, elf.little_endian)
    ehdr = lay.ehdr.unpack_from(raw, 16)
    shoff, shentsize = ehdr[5], ehdr[10]
    buf = bytearray(hide_function_symbols(raw, elf))
    appended: list[bytes] = []  # inflated sections, placed after the image (8-aligned)
    end = len(buf)
    total = 0
    for index, sec in enumerate(elf.sections):
        if not _is_debug(sec.name) or sec.sh_type == SHT_NOBITS:
            continue
        if sec.size > MAX_SECTION_BYTES or sec.offset + sec.size > len(raw):
            where = (f"is too large (limit {MAX_SECTION_BYTES >> 30} GiB)"
                     if sec.size > MAX_SECTION_BYTES else "lies outside the file")
            raise ElfError(f"{elf.path}: section {sec.name}: {sec.size} bytes {where}")
        compressed = bool(sec.flags & SHF_COMPRESSED) or (
            sec.name.startswith(".zdebug_") and raw[sec.offset : sec.offset + 4] == b"ZLIB")
        size = sec.size
        if compressed:
            data = elf.section_data(sec)  # bounded by MAX_SECTION_BYTES, or ElfError
            size = len(data)
        total += size
        if total > MAX_DWARF_BYTES:
            raise ElfError(f"{elf.path}: section {sec.name}: DWARF sections add up to more "
                           f"than {MAX_DWARF_BYTES >> 30} GiB; too large")
        if not compressed:
            continue
        offset = (end + 7) & ~7
        appended += [bytes(offset - end), data]
        end = offset + len(data)
        at = shoff + index * shentsize
        row = list(lay.shdr.unpack_from(buf, at))
        row[2] &= ~SHF_COMPRESSED
        row[4], row[5] = offset, len(data)
        lay.shdr.pack_into(buf, at, *row)
        if sec.name.startswith(".zdebug_"):
            _rename(buf, lay, ehdr, elf, row[0], sec.name)
    return b"".join([buf, *appended])  # one copy of each inflated section


def _rename(buf: bytearray, lay: ElfLayout, ehdr: tuple[int, ...], elf: ElfFile,
            name_offset: int, name: str) -> None:
    """Write ``.debug_x`` over ``.zdebug_x`` in the section name table (one byte shorter)."""
    shstrndx = ehdr[12]
    if not 0 < shstrndx < len(elf.sections):
        return
    at = elf.sections[shstrndx].offset + name_offset
    new = ("." + name[2:]).encode() + b"\0"
    if buf[at : at + len(new)] == name.encode()[: len(new)]:
        buf[at : at + len(new)] = new

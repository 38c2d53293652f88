"""The ELF symbol-table facts stored beside the SymCache: what ``addr2line`` names from.

binutils names an address from the ELF symbol table when no DWARF function covers it, and
uses ELF symbols for some DWARF functions too, with its own rules. :func:`symbol_tables`
builds the ``sec_*``/``sym_*`` tables of :class:`bee_report.dwarf.tables.Tables` by those
rules, and :func:`hide_function_symbols` turns FUNC/IFUNC symbols into OBJECTs in a copy
of the image so that symbolic names every function from DWARF while building the
SymCache (the ELF names are applied afterwards by :mod:`bee_report.dwarf.lines`).
"""

from __future__ import annotations

from collections.abc import Iterator

from bee_contract.elf import symbol_entries
from bee_contract.errors import ElfError
from bee_report.dwarf.tables import NONE, u32, u64
from bee_report.elf.elffile import ElfFile

__all__ = ["hide_function_symbols", "symbol_tables"]

_SHT_SYMTAB, _SHT_NOBITS, _SHT_DYNSYM = 2, 8, 11
_SHF_ALLOC, _SHF_TLS = 0x2, 0x400
_STT_OBJECT, _STT_FUNC, _STT_SECTION, _STT_FILE, _STT_TLS, _STT_IFUNC = 1, 2, 3, 4, 6, 10
# st_info with FUNC/IFUNC turned into OBJECT: symbolic then names functions from DWARF only.
_HIDE = bytes(b & 0xF0 | _STT_OBJECT if b & 0xF in (_STT_FUNC, _STT_IFUNC) else b
              for b in range(256))  # fmt: skip


def _symbols(elf: ElfFile) -> Iterator[tuple[bytes, int, int, int, int, int]]:
    """(name, value, size, st_info, st_other, st_shndx) of each entry of .symtab, else of
    .dynsym (addr2line's choice), skipping entry 0."""
    for kind in (_SHT_SYMTAB, _SHT_DYNSYM):
        table = next((s for s in elf.sections if s.sh_type == kind and s.size > s.entsize), None)
        if table is not None and 0 < table.link < len(elf.sections):
            break
    else:
        return
    if table.entsize != (24 if elf.is_64 else 16):
        raise ElfError(f"{elf.path}: {table.name} entries of {table.entsize} bytes")
    data, strtab = elf.section_data(table), elf.section_data(elf.sections[table.link])
    rows = symbol_entries(data, is_64=elf.is_64, little_endian=elf.little_endian,
                          entsize=table.entsize)
    for i, (name_off, value, size, info, other, shndx) in enumerate(rows):
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

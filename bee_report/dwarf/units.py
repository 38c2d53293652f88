"""A minimal DWARF .debug_info reader, and the GNU as subprogram names it is used for.

symbolic keeps the first of several DWARF functions on one range, binutils the last; GNU as
is the only producer that writes such duplicates (one subprogram per alias), so
:func:`assembler_names` re-reads just its units to let :func:`bee_report.dwarf.lines.build`
print the names binutils prints. The reader is only what that needs: :class:`DwarfUnit`
walks the DIEs of one unit (DWARF 2-5, 32/64-bit) attribute by attribute, abbreviation
tables are parsed lazily, and :func:`unit_offsets` uses .debug_aranges to visit only the
units covering the addresses asked for.
"""

from __future__ import annotations

import bisect
import struct
from typing import Any

from bee_contract.elf import read_uleb128
from bee_contract.errors import ElfError
from bee_report.elf.elffile import ElfFile

__all__ = ["DwarfUnit", "assembler_names", "unit_offsets"]

_DW_LANG_MIPS_ASSEMBLER = 0x8001  # what GNU as writes

_FIXED_FORMS = {0x05: 2, 0x06: 4, 0x07: 8, 0x0B: 1, 0x0C: 1, 0x11: 1, 0x12: 2, 0x13: 4, 0x14: 8,
                0x19: 0, 0x1C: 4, 0x1E: 16, 0x20: 8, 0x21: 0, 0x24: 8, 0x25: 1, 0x26: 2,
                0x27: 3, 0x28: 4, 0x29: 1, 0x2A: 2, 0x2B: 3, 0x2C: 4}  # fmt: skip
_LEB_FORMS = {0x0D, 0x0F, 0x15, 0x1A, 0x1B, 0x22, 0x23, 0x1F01, 0x1F02}
_OFFSET_FORMS = {0x0E, 0x10, 0x17, 0x1D, 0x1F, 0x1F20, 0x1F21}


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
        code, self.pos = read_uleb128(self.info, self.pos)
        if code == 0:
            return 0, {}
        tag, specs = self.abbrevs[code]
        return tag, {attr: (form, self._value(form, const)) for attr, form, const in specs}

    def _value(self, form: int, const: int) -> Any:
        info, pos = self.info, self.pos
        if form == 0x16:  # indirect
            form, pos = read_uleb128(info, pos)
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
            value, self.pos = read_uleb128(info, pos)
            return value
        length_size = {0x03: 2, 0x04: 4, 0x0A: 1}.get(form)
        if length_size is not None:
            length = int.from_bytes(info[pos : pos + length_size], "little")
            self.pos = pos + length_size + length
        elif form in (0x09, 0x18):  # block, exprloc
            length, pos = read_uleb128(info, pos)
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
            found, pos = read_uleb128(data, pos)
            if found == 0:
                raise KeyError(code)
            tag, pos = read_uleb128(data, pos)
            pos += 1  # has_children
            specs = []
            while True:
                attr, pos = read_uleb128(data, pos)
                form, pos = read_uleb128(data, pos)
                const = 0
                if form == 0x21:  # implicit_const (signed; only its length matters here)
                    const, pos = read_uleb128(data, pos)
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


def assembler_names(elf: ElfFile, addresses: list[int]) -> dict[int, bytes]:
    """low_pc -> name of the last subprogram there in GNU as units, for ``addresses``.

    binutils picks the last of several DWARF functions on one range (gas writes one per
    alias: ``capget``, ``__GI_capget``), symbolic the first.
    """

    def section(name: str) -> bytes:
        found = elf.section(name) or elf.section(".z" + name[1:])
        return elf.section_data(found) if found is not None else b""

    names: dict[int, bytes] = {}
    try:
        info = section(".debug_info") if addresses else b""
        abbrev = section(".debug_abbrev") if info else b""
        if not info or not abbrev:
            return {}
        strs = {0x0E: section(".debug_str"), 0x1F: section(".debug_line_str")}
        aranges = section(".debug_aranges")
        offsets = unit_offsets(aranges, addresses) if aranges else None
        pos = 0
        while offsets or (offsets is None and pos + 11 < len(info)):
            unit = DwarfUnit(info, offsets.pop(0) if offsets else pos, abbrev)
            pos = unit.end
            top = unit.die() if unit.ok else None
            if top is None or top[1].get(0x13, (0, 0))[1] != _DW_LANG_MIPS_ASSEMBLER:
                continue  # DW_AT_language: only GNU as writes duplicates
            while (die := unit.die()) is not None:
                tag, attrs = die
                (form, name), low = attrs.get(0x03, (0, None)), attrs.get(0x11, (0, None))[1]
                if tag != 0x2E or low is None or name is None:  # DW_TAG_subprogram
                    continue
                if isinstance(name, int):
                    table = strs.get(form)
                    name = table[name : table.index(b"\0", name)] if table else None
                if name:
                    names[low] = name
    except (ValueError, IndexError, KeyError, struct.error, ElfError):
        pass  # malformed or exotic DWARF: keep what was read, symbolic's names stand
    return names

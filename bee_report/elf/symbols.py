"""Address -> function-name lookup built from ELF symbol tables.

:class:`FunctionTable` holds parallel sorted arrays (starts, sizes, names) searched with
:mod:`bisect`. It is built by :meth:`bee_report.elf.elffile.ElfFile.functions` and can be turned
into plain lists for caching (:meth:`FunctionTable.to_arrays` / :meth:`from_arrays`).

Which symbols are kept
    STT_FUNC and STT_GNU_IFUNC symbols of ``.symtab`` and ``.dynsym`` that are defined
    (st_shndx not SHN_UNDEF nor another reserved index) with a non-zero value. Names
    are raw: mangled, with ``.cold``/``.isra.0``/``.constprop.0``/``.part.0`` suffixes and,
    where the linker wrote them into ``.symtab``, ``@VERSION``/``@@VERSION`` suffixes
    (glibc's .symtab has e.g. ``pthread_kill@GLIBC_2.2.5``). A ``.dynsym`` entry is dropped
    when ``.symtab`` already has a symbol at the same address with the same name up to
    any ``@`` (``.dynsym`` names carry no version).

Size-0 symbols
    extend to the next kept symbol start in the same section, or to the section end;
    they are dropped when a sized symbol starts at the same address.

Lookup rule (mirrors binutils ``addr2line -f``, i.e. bfd's ``elf_find_function``)
    the symbol whose range contains the address and whose start is the greatest; among
    symbols with that same start, the smallest one containing the address; among
    aliases with the same start and size, the first in symbol-table order (.symtab before
    .dynsym). Since ELF puts LOCAL symbols before GLOBAL/WEAK ones, a local alias wins
    (addr2line prints ``__pthread_kill_esrch``, not ``pthread_kill@GLIBC_2.2.5``).
    Unlike addr2line, an address past the end of the nearest preceding symbol resolves to
    an enclosing symbol if one contains it, else to None (addr2line reports the nearest
    preceding symbol regardless of its size).
"""

from __future__ import annotations

import operator
import struct
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import NamedTuple, TypedDict

from bee_contract.elf import c_string, symbol_entries
from bee_contract.errors import ElfError

_U64 = 1 << 64
_STT_FUNC = 2
_STT_GNU_IFUNC = 10
_SHN_LORESERVE = 0xFF00
_SHN_XINDEX = 0xFFFF


@dataclass(frozen=True, slots=True)
class Symbol:
    """A function symbol; ``size`` is the effective size (see the module docstring)."""

    name: str
    start: int
    size: int


class RawSymbol(NamedTuple):
    """One candidate symbol as read from a symbol table, before merging."""

    name: str
    value: int
    size: int
    shndx: int
    binding: int
    dynamic: bool


class FunctionArrays(TypedDict):
    """Plain-data form of a :class:`FunctionTable` (msgpack/JSON friendly)."""

    starts: list[int]
    sizes: list[int]
    names: list[str]


class FunctionTable:
    """Sorted function ranges; :meth:`lookup` maps an ELF virtual address to a Symbol.

    Entries are ordered by (start ascending, size descending) with no duplicate
    (start, size) pair; ``parents[i]`` is the index of the nearest earlier entry still
    open at ``starts[i]`` (or -1), so lookups step outwards through enclosing ranges.
    """

    __slots__ = ("_names", "_parents", "_sizes", "_starts")

    def __init__(self, starts: array[int], sizes: array[int], names: list[str]) -> None:
        """Wrap already sorted, de-duplicated arrays; prefer the builders."""
        self._starts = starts
        self._sizes = sizes
        self._names = names
        self._parents = _parents(starts, sizes)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"FunctionTable({len(self)} functions)"

    def lookup(self, vaddr: int) -> Symbol | None:
        """The function containing ``vaddr`` by the module's lookup rule, or None."""
        starts, sizes, parents = self._starts, self._sizes, self._parents
        i = bisect_right(starts, vaddr) - 1
        while i >= 0:
            start = starts[i]
            if vaddr < start + sizes[i]:
                return Symbol(self._names[i], start, sizes[i])
            i = parents[i]
        return None

    def to_arrays(self) -> FunctionArrays:
        """Plain lists suitable for msgpack; inverse of :meth:`from_arrays`."""
        return {
            "starts": self._starts.tolist(),
            "sizes": self._sizes.tolist(),
            "names": list(self._names),
        }

    @classmethod
    def from_arrays(cls, data: Mapping[str, object]) -> FunctionTable:
        """Rebuild from :meth:`to_arrays` output; raises ElfError if it is inconsistent."""
        try:
            raw_starts, raw_sizes, raw_names = data["starts"], data["sizes"], data["names"]
            if not (
                isinstance(raw_starts, Sequence)
                and isinstance(raw_sizes, Sequence)
                and isinstance(raw_names, Sequence)
            ):
                raise TypeError("fields must be sequences")
            starts = array("Q", raw_starts)
            sizes = array("Q", raw_sizes)
            names = list(raw_names)
        except (KeyError, TypeError, OverflowError, ValueError) as exc:
            raise ElfError(f"invalid cached function table: {exc}") from exc
        if not len(starts) == len(sizes) == len(names):
            raise ElfError("invalid cached function table: array lengths differ")
        if not all(isinstance(n, str) for n in names):
            raise ElfError("invalid cached function table: names must be strings")
        if not all(map(operator.lt, starts, islice(starts, 1, None))):  # else surely sorted
            for i in range(1, len(starts)):
                prev, cur = (starts[i - 1], -sizes[i - 1]), (starts[i], -sizes[i])
                if not prev < cur:
                    raise ElfError(f"invalid cached function table: entry {i} out of order")
        if 0 in sizes:
            raise ElfError("invalid cached function table: zero-sized entry")
        return cls(starts, sizes, names)


def build_function_table(
    symbols: Iterable[RawSymbol], section_ends: Sequence[int]
) -> FunctionTable:
    """Merge candidate symbols (in symbol-table order) into a FunctionTable.

    ``section_ends[i]`` is ``sh_addr + sh_size`` of section ``i``; it bounds the
    extension of size-0 symbols.
    """
    seen: set[tuple[int, str]] = set()
    cands: list[RawSymbol] = []
    for sym in symbols:
        key = (sym.value, sym.name.partition("@")[0])
        if sym.dynamic and key in seen:
            continue
        seen.add(key)
        cands.append(sym)

    sized_starts = {s.value for s in cands if s.size}
    per_section: dict[int, list[int]] = {}
    for s in cands:
        per_section.setdefault(s.shndx, []).append(s.value)
    for starts_list in per_section.values():
        starts_list.sort()

    entries: list[tuple[int, int, int, str]] = []
    for order, s in enumerate(cands):
        size = s.size
        if not size:
            if s.value in sized_starts:
                continue
            sec_starts = per_section[s.shndx]
            j = bisect_right(sec_starts, s.value)
            end = sec_starts[j] if j < len(sec_starts) else _U64
            if s.shndx < len(section_ends) and section_ends[s.shndx] > s.value:
                end = min(end, section_ends[s.shndx])
            if end == _U64:
                continue
            size = end - s.value
        if s.value + size > _U64:
            size = _U64 - s.value
        entries.append((s.value, -size, order, s.name))
    entries.sort()

    starts: array[int] = array("Q")
    sizes: array[int] = array("Q")
    names: list[str] = []
    last: tuple[int, int] | None = None
    for start, neg_size, _order, name in entries:
        if (start, neg_size) == last:
            continue  # alias with the same range: first in table order wins
        last = (start, neg_size)
        starts.append(start)
        sizes.append(-neg_size)
        names.append(name)
    return FunctionTable(starts, sizes, names)


def read_function_symbols(
    data: bytes,
    strtab: bytes,
    *,
    is_64: bool,
    little_endian: bool,
    entsize: int,
    section_count: int,
    xindex: bytes | None,
    dynamic: bool,
) -> list[RawSymbol]:
    """Defined FUNC/IFUNC symbols with a non-zero value from one symbol table's bytes.

    ``xindex`` is the SHT_SYMTAB_SHNDX data for SHN_XINDEX entries, if any. Symbols in
    reserved or out-of-range sections are skipped; a bad entry size or name offset
    raises ElfError (message without the file name; the caller adds it).
    """
    rows = symbol_entries(data, is_64=is_64, little_endian=little_endian, entsize=entsize)
    u32 = struct.Struct(("<" if little_endian else ">") + "I")
    xcount = len(xindex) // 4 if xindex else 0
    kept: list[tuple[int, int, int, int, int]] = []
    for i, (name_off, value, size, st_info, _other, shndx) in enumerate(rows):
        st_type = st_info & 0xF
        if (st_type != _STT_FUNC and st_type != _STT_GNU_IFUNC) or not value or not shndx:
            continue
        if shndx >= _SHN_LORESERVE:
            if shndx != _SHN_XINDEX or xindex is None or i >= xcount:
                continue
            shndx = u32.unpack_from(xindex, 4 * i)[0]
        if shndx >= section_count:
            continue
        kept.append((name_off, st_info >> 4, shndx, value, size))
    out = []
    for name_off, binding, shndx, value, size in kept:
        name = c_string(strtab, name_off)
        if name is None:
            raise ElfError(f"bad symbol name offset {name_off:#x}")
        out.append(RawSymbol(name, value, size, shndx, binding, dynamic))
    return out


def _parents(starts: array[int], sizes: array[int]) -> array[int]:
    ends = list(map(operator.add, starts, sizes))
    if all(map(operator.le, ends, islice(starts, 1, None))):
        return array("q", [-1]) * len(starts)  # no range overlaps the next: the usual case
    parents: array[int] = array("q", bytes(8 * len(starts)))
    stack: list[int] = []
    open_ends: list[int] = []
    for j, start in enumerate(starts):
        while open_ends and open_ends[-1] <= start:
            open_ends.pop()
            stack.pop()
        parents[j] = stack[-1] if stack else -1
        stack.append(j)
        open_ends.append(ends[j])
    return parents

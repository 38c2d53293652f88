"""Kernel symbols on the target: only the kallsyms entries needed by sampled addresses.

The whole table (~200k entries) is read once at the end of a recording; for each sampled
kernel address the covering symbol is kept, plus the following one so that the report
side knows where the covering symbol ends.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Sequence
from typing import Any

from bee_contract.buildid import build_id_in_notes
from bee_contract.recording import KernelInfo, KernelSymbol
from bee_contract.safeopen import read_regular

_TEXT_TYPES = (b"t", b"T", b"w", b"W")
_MAX_KALLSYMS_BYTES = 256 << 20  # about 20 MB on a large kernel


def _text_lines(path: str) -> list[bytes]:
    """The text-symbol lines of kallsyms, sorted by address; [] when hidden or unreadable.

    Addresses are fixed-width hex at the start of each line, so sorting the lines sorts
    by address; only the lines of needed symbols are ever parsed. This runs at the end of
    every recording, over about 200k lines.
    """
    try:
        data = read_regular(path, _MAX_KALLSYMS_BYTES, pseudo=True)
    except OSError:
        return []
    lines = data.split(b"\n")
    width = lines[0].find(b" ") if lines else -1
    if width <= 0 or not lines[0][:width].strip(b"0"):
        return []  # addresses hidden (kptr_restrict) or not kallsyms
    kept = [ln for ln in lines if ln[width + 1:width + 2] in _TEXT_TYPES]
    kept.sort()
    return kept


def _symbol(line: bytes) -> KernelSymbol:
    addr, _, rest = line.partition(b" ")
    name, _, module = rest[2:].partition(b"\t")
    return KernelSymbol(int(addr, 16), name.decode("utf-8", "replace"),
                        module.strip(b"[]").decode("utf-8", "replace"))


def read_kallsyms(path: str = "/proc/kallsyms") -> list[KernelSymbol]:
    """Every text symbol, sorted by address; empty if hidden (kptr_restrict) or unreadable."""
    return [_symbol(ln) for ln in _text_lines(path)]


def kernel_build_id(path: str = "/sys/kernel/notes") -> str | None:
    """The running kernel's GNU build-id from its notes, or None."""
    try:
        data = read_regular(path, 1 << 16, pseudo=True)
    except OSError:
        return None
    return build_id_in_notes(data, little_endian=True)


def needed_symbols(table: list[KernelSymbol], addresses: Iterable[int]) -> list[KernelSymbol]:
    """The entries covering `addresses` and each one's successor, sorted, de-duplicated."""
    starts = [s.address for s in table]
    return [table[i] for i in _needed(starts, list(addresses))]


def _needed(starts: Sequence[Any], addresses: Sequence[Any]) -> list[int]:
    """Indices of the entries covering each address, and of their successors."""
    keep: set[int] = set()
    for addr in addresses:
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0:
            keep.add(i)
            if i + 1 < len(starts):
                keep.add(i + 1)
    return sorted(keep)


def read_vdso(proc: str = "/proc/self") -> bytes:
    """The vDSO image as mapped in `proc` (this process by default), or b"".

    Every 64-bit process on a kernel maps the same vDSO, so bee's own copy serves to name
    `[vdso]` frames of the processes it sampled.
    """
    try:
        with open(f"{proc}/maps") as f:
            for line in f:
                if line.rstrip().endswith("[vdso]"):
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    break
            else:
                return b""
        if hi - lo > 1 << 20:
            return b""
        with open(f"{proc}/mem", "rb") as mem:
            mem.seek(lo)
            data = mem.read(hi - lo)
    except (OSError, ValueError):
        return b""
    return data if data[:4] == b"\x7fELF" else b""


def kernel_info(addresses: Iterable[int], with_vdso: bool = False) -> KernelInfo:
    """Build the recording's kernel section for the given sampled kernel addresses."""
    addrs = list(addresses)
    symbols = []
    lines = _text_lines("/proc/kallsyms") if addrs else []
    if lines:
        width = lines[0].find(b" ")
        # the last line whose address is <= a: compare with "ADDR\xff" (after "ADDR ...")
        keys = [f"{a:0{width}x}".encode() + b"\xff" for a in addrs]
        symbols = [_symbol(lines[i]) for i in _needed(lines, keys)]
    return KernelInfo(os.uname().release, kernel_build_id(), tuple(symbols),
                      read_vdso() if with_vdso else b"")

"""Kernel symbols on the target: only the kallsyms entries needed by sampled addresses.

The whole table (~200k entries) is read once at the end of a recording; for each sampled
kernel address the covering symbol is kept, plus the following one so that the report
side knows where the covering symbol ends.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterable

from bee_record.buildid import parse_notes
from bee_record.recording import KernelInfo, KernelSymbol

_TEXT_LINE = re.compile(rb"^([0-9a-f]+) [tTwW] (\S+)(?:\t\[(\S+)\])?$", re.M)


def _raw_table(path: str) -> tuple[list[int], list[tuple[bytes, bytes, bytes]]]:
    """(sorted addresses, matching raw entries); no objects made for unneeded symbols."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return [], []
    entries = [e for e in _TEXT_LINE.findall(data) if e[0].strip(b"0")]
    addrs = [int(e[0], 16) for e in entries]
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    return [addrs[i] for i in order], [entries[i] for i in order]


def read_kallsyms(path: str = "/proc/kallsyms") -> list[KernelSymbol]:
    """Every text symbol, sorted by address; empty if hidden (kptr_restrict) or unreadable.

    One regular expression over the whole file (about 200k lines) is far faster than a
    per-line Python loop; this runs at the end of every recording.
    """
    addrs, entries = _raw_table(path)
    return [_symbol(a, e) for a, e in zip(addrs, entries, strict=True)]


def _symbol(address: int, entry: tuple[bytes, bytes, bytes]) -> KernelSymbol:
    return KernelSymbol(address, entry[1].decode("utf-8", "replace"),
                        entry[2].decode("utf-8", "replace"))


def kernel_build_id(path: str = "/sys/kernel/notes") -> str | None:
    """The running kernel's GNU build-id from its notes, or None."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 16)
    except OSError:
        return None
    return parse_notes(data, little=True)


def needed_symbols(table: list[KernelSymbol], addresses: Iterable[int]) -> list[KernelSymbol]:
    """The entries covering `addresses` and each one's successor, sorted, de-duplicated."""
    starts = [s.address for s in table]
    return [table[i] for i in _needed(starts, addresses)]


def _needed(starts: list[int], addresses: Iterable[int]) -> list[int]:
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
    if addrs:
        starts, entries = _raw_table("/proc/kallsyms")
        symbols = [_symbol(starts[i], entries[i]) for i in _needed(starts, addrs)]
    return KernelInfo(os.uname().release, kernel_build_id(), tuple(symbols),
                      read_vdso() if with_vdso else b"")

"""Kernel symbols on the target: only the kallsyms entries needed by sampled addresses.

The whole table (~200k entries) is read once at the end of a recording; for each sampled
kernel address the covering symbol is kept, plus the following one so that the report
side knows where the covering symbol ends.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable

from bee_record.buildid import parse_notes
from bee_record.recording import KernelInfo, KernelSymbol

_TEXT_TYPES = frozenset("tTwW")


def read_kallsyms(path: str = "/proc/kallsyms") -> list[KernelSymbol]:
    """Read text symbols, sorted by address; empty if hidden (kptr_restrict) or unreadable."""
    out: list[KernelSymbol] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3 or parts[1] not in _TEXT_TYPES:
                    continue
                addr = int(parts[0], 16)
                if addr == 0:
                    continue
                module = parts[3].strip("[]") if len(parts) > 3 else ""
                out.append(KernelSymbol(addr, parts[2], module))
    except (OSError, ValueError):
        return []
    out.sort(key=lambda s: s.address)
    return out


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
    keep: set[int] = set()
    for addr in addresses:
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0:
            keep.add(i)
            if i + 1 < len(table):
                keep.add(i + 1)
    return [table[i] for i in sorted(keep)]


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
    symbols = needed_symbols(read_kallsyms(), addrs) if addrs else []
    return KernelInfo(os.uname().release, kernel_build_id(), tuple(symbols),
                      read_vdso() if with_vdso else b"")

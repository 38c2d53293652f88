"""Put unwind tables into the BPF unwinder's maps.

Rows of every binary go once into the shared, memory-mapped `urows` array (a bump
allocator: binaries are few and a recording is bounded); each process gets a slot of
MAX_MAPPINGS entries in the memory-mapped `umap_entries` array for its mappings that
have rows, sorted by address, and `uprocs` says which slot and how many. When every slot
is taken, the process loaded longest ago gives its slot up. Binaries whose table cannot be built (no
CFI, not x86-64, unreadable) are remembered and skipped; their code is unwound with the
frame pointer. So is bee's own process: it maps bcc's LLVM and clang libraries, whose
tables take seconds of CPU to build at a host's first launch (tens of MB of rows), which
would be spent profiling the profiler.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import sys
from collections import OrderedDict
from typing import Any

from bee_contract.recording import Binary, Process
from bee_record.unwind.table import ROW, TableError, UnwindTable, load

#: Mappings with rows per process, as sized in bpf/unwind.c (BEE_UMAPS_MAX).
MAX_MAPPINGS = 128
#: Processes with tables at once (BEE_UMAPS_PROCS).
MAX_PROCESSES = 1024
_MASK64 = (1 << 64) - 1
#: struct bee_umap: start, end, bias, first, count.
_UMAP = struct.Struct("<QQQII")


def _map_array(table: Any, entries: int, entry_size: int) -> mmap.mmap:
    size = entries * entry_size
    size = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
    return mmap.mmap(table.map_fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)


class UnwindLoader:
    """Loads tables for processes into the BPF maps `urows` and `umaps`."""

    def __init__(self, rows_map: Any, entries_map: Any, uprocs: Any, capacity: int,
                 proc: str = "/proc") -> None:
        self.capacity = capacity
        self.proc = proc
        self._uprocs = uprocs
        self._rows = _map_array(rows_map, capacity, ROW.size)
        self._entries = _map_array(entries_map, MAX_PROCESSES * MAX_MAPPINGS, _UMAP.size)
        #: pid -> slot, oldest first
        self._slots: OrderedDict[int, int] = OrderedDict()
        self._free = list(range(MAX_PROCESSES - 1, -1, -1))
        self._used = 0
        #: binary key -> (first row, count, table) or None when it has no table
        self._loaded: dict[tuple[str, str], tuple[int, int, UnwindTable] | None] = {}
        #: bee's own process gets no tables (module doc)
        self.own_pid = os.getpid()
        self.failures: dict[str, str] = {}
        self._full_warned = False

    @property
    def rows_used(self) -> int:
        """Rows written so far."""
        return self._used

    def load_process(self, process: Process, binaries: list[Binary]) -> None:
        """Build or load the tables of the process's mappings and write its `umaps` entry."""
        if process.pid == self.own_pid:
            return
        entries: list[tuple[int, int, int, int, int]] = []
        for m in process.maps:
            if m.binary < 0 or m.binary >= len(binaries):
                continue
            got = self._table(process.pid, m.start, m.end, m.path, binaries[m.binary])
            if got is None:
                continue
            first, count, table = got
            bias = table.vaddr_bias(m.start, m.offset)
            if bias is None or count == 0:
                continue
            entries.append((m.start, m.end, bias & _MASK64, first, count))
        entries.sort()
        self._write(process.pid, entries[:MAX_MAPPINGS])

    def _write(self, pid: int, entries: list[tuple[int, int, int, int, int]]) -> None:
        key = self._uprocs.Key(pid)
        slot = self._slots.pop(pid, None)
        if slot is not None:
            # rewrite in place: hide the entries while they change
            with contextlib.suppress(KeyError):
                del self._uprocs[key]
        elif self._free:
            slot = self._free.pop()
        else:
            old_pid, slot = self._slots.popitem(last=False)
            with contextlib.suppress(KeyError):
                del self._uprocs[self._uprocs.Key(old_pid)]
        self._slots[pid] = slot
        base = slot * MAX_MAPPINGS * _UMAP.size
        blob = b"".join(_UMAP.pack(*e) for e in entries)
        self._entries[base:base + len(blob)] = blob
        leaf = self._uprocs.Leaf()
        leaf.slot, leaf.count = slot, len(entries)
        with contextlib.suppress(Exception):
            self._uprocs[key] = leaf

    def _table(self, pid: int, lo: int, hi: int, path: str, binary: Binary
               ) -> tuple[int, int, UnwindTable] | None:
        key = (binary.build_id or "", binary.path)
        if key in self._loaded:
            return self._loaded[key]
        table = None
        error = "unreadable"
        for candidate in (f"{self.proc}/{pid}/map_files/{lo:x}-{hi:x}",
                          f"{self.proc}/{pid}/root{path}", path):
            try:
                table = load(candidate, binary.build_id)
                break
            except TableError as exc:
                error = str(exc)
                if "No such file" not in error and "denied" not in error:
                    break
        got = None
        if table is None:
            self.failures[binary.path] = error
        elif self._used + table.count > self.capacity:
            if not self._full_warned:
                self._full_warned = True
                print(f"bee record: unwind tables are full ({self.capacity} rows); "
                      f"{binary.path} and later binaries are unwound with frame pointers",
                      file=sys.stderr)
        else:
            first = self._used
            self._rows[first * ROW.size:(first + table.count) * ROW.size] = table.rows
            self._used += table.count
            got = (first, table.count, table)
        self._loaded[key] = got
        return got

    def close(self) -> None:
        """Unmap the row table."""
        with contextlib.suppress(Exception):
            self._rows.close()
            self._entries.close()

"""Accumulate drained counts and turn them into standalone Recordings.

A Collector interns stacks and sums samples between file writes. `build()` makes a
Recording that stands alone: only the processes and binaries its samples use, the JIT
(perf map) entries covering its unmapped user addresses, and the kallsyms entries its
kernel addresses need. With `--rotate`, `reset()` starts the next file of the series.
"""

from __future__ import annotations

import bisect
import os
import re
import stat
from dataclasses import dataclass, replace

from bee_contract.recording import (
    LOST_STACK,
    PY_TRUNCATED,
    Binary,
    Header,
    JitSymbol,
    Process,
    PythonInfo,
    Recording,
    Sample,
    is_anonymous,
)
from bee_contract.safeopen import read_regular
from bee_record.kallsyms import kernel_info
from bee_record.procs import ProcessTable
from bee_record.python.codeobj import CodeTable
from bee_record.sampler import RawCount

_MAX_PERF_MAP_BYTES = 256 << 20
_HEX64 = re.compile(r"(?:0[xX])?[0-9a-fA-F]{1,16}")


@dataclass
class _Acc:
    count: int = 0
    weight: int = 0


class Collector:
    """Turns drained counts into the recording's tables."""

    def __init__(self, table: ProcessTable) -> None:
        self.table = table
        self.stacks: dict[tuple[int, ...], int] = {}
        #: (process, tid, cpu, comm, user stack, kernel stack, event, python stack, time
        #: bucket since the sampler's start) -> counts
        self.samples: dict[tuple[int, int, int, str, int, int, int, int, int], _Acc] = {}
        #: Python stacks as (code index, info) pairs, and each CPython process's code table.
        self.py_stacks: dict[tuple[tuple[int, int], ...], int] = {}
        self.codes: dict[int, CodeTable] = {}
        self.drains = 0
        self._refreshed: set[int] = set()
        #: (pid, generation) pairs whose samples are dropped, e.g. the `--` command's
        #: child before its exec (it still runs bee's own code then).
        self.skip: set[tuple[int, int]] = set()
        #: JIT: user addresses outside file mappings not yet named by a perf map, and the
        #: perf-map entries found so far, per process index. Read while the process lives
        #: (its /tmp may be a private mount that disappears with it).
        self.jit_pending: dict[int, set[int]] = {}
        self.jit: dict[int, dict[int, JitSymbol]] = {}
        self._perf_map_size: dict[int, int] = {}
        self._checked: set[tuple[int, int]] = set()

    def _stack(self, value: tuple[int, ...] | int) -> int:
        if isinstance(value, int):
            return value
        idx = self.stacks.get(value)
        if idx is None:
            idx = self.stacks[value] = len(self.stacks)
        return idx

    def add(self, raw: RawCount) -> None:
        """Account one drained count (capturing its process if not seen yet)."""
        if (raw.pid, raw.generation) in self.skip:
            return
        proc = self.table.index_of(raw.pid, raw.generation, raw.comm)
        user = self._stack(raw.user_stack)
        if isinstance(raw.user_stack, tuple) and (proc, user) not in self._checked:
            # once per distinct (process, stack): the same stack comes back every drain
            self._checked.add((proc, user))
            self._check_user_stack(proc, raw.user_stack)
        key = (proc, raw.tid, raw.cpu, raw.comm, user, self._stack(raw.kernel_stack),
               raw.event, self._python_stack(proc, raw.python_stack), raw.bucket)
        acc = self.samples.get(key)
        if acc is None:
            acc = self.samples[key] = _Acc()
        acc.count += raw.count
        acc.weight += raw.weight

    def _python_stack(self, proc: int, value: tuple[tuple[int, int], ...] | int) -> int:
        """Intern a Python stack, naming its code objects (read once per process)."""
        if isinstance(value, int):
            return value
        codes = self._code_table(proc)
        if codes is None:
            return LOST_STACK
        frames = tuple(
            (PY_TRUNCATED, 0) if (address, info) == (0, 0) and i == len(value) - 1
            else (codes.index(address, self.drains), info)
            for i, (address, info) in enumerate(value))
        idx = self.py_stacks.get(frames)
        if idx is None:
            idx = self.py_stacks[frames] = len(self.py_stacks)
        return idx

    def _code_table(self, proc: int) -> CodeTable | None:
        """The code table of a CPython process generation (None: not CPython)."""
        codes = self.codes.get(proc)
        if codes is None:
            rt = self.table.python.get(proc)
            if rt is None:
                return None
            codes = self.codes[proc] = CodeTable(self.table.processes[proc].pid, rt)
        return codes

    def read_python_codes(self, new: dict[int, set[int]]) -> None:
        """Read the names of code objects just seen in BPF, while their process lives.

        Called from the poll loop between drains: a short-lived process is gone by the
        next drain, and a module's top-level code object is freed once it has run.
        """
        for pid, addresses in new.items():
            proc = self.table.python_index(pid)
            codes = self._code_table(proc) if proc is not None else None
            if codes is not None:
                for address in addresses:
                    codes.prefetch(address)

    def _check_user_stack(self, proc: int, stack: tuple[int, ...]) -> None:
        """Refresh maps after dlopen; queue addresses outside file mappings for perf maps."""
        if proc not in self._refreshed and not all(self.table.covers(proc, a) for a in stack):
            self._refreshed.add(proc)
            self.table.refresh(proc)
        for a in stack:
            path = self.table.mapped_path(proc, a)
            if path is None or is_anonymous(path):
                known = self.jit.get(proc)
                if known is None or not _covered(known, a):
                    self.jit_pending.setdefault(proc, set()).add(a)

    def end_drain(self, final: bool = False) -> None:
        """Name pending JIT addresses from perf maps; allow new maps refreshes."""
        self._refreshed.clear()
        self.drains += 1
        for proc, pending in list(self.jit_pending.items()):
            p = self.table.processes[proc]
            size = perf_map_size(p.pid, p.ns_pid)
            if size is None or (not final and size == self._perf_map_size.get(proc)):
                continue
            self._perf_map_size[proc] = size
            entries = read_perf_map(p.pid, p.ns_pid)
            starts = [e.start for e in entries]
            known = self.jit.setdefault(proc, {})
            for a in list(pending):
                i = bisect.bisect_right(starts, a) - 1
                if i >= 0 and a < entries[i].start + max(entries[i].size, 1):
                    known[entries[i].start] = entries[i]
                    pending.discard(a)
            if not pending:
                del self.jit_pending[proc]

    def reset(self) -> None:
        """Start a new file: forget samples, stacks and exited processes."""
        self.stacks = {}
        self.samples = {}
        self.py_stacks = {}
        self._checked = set()
        remap = self.table.prune_exited()
        self.codes = {remap[k]: v for k, v in self.codes.items() if k in remap}
        for codes in self.codes.values():
            codes.start_file()
        self.jit = {remap[k]: v for k, v in self.jit.items() if k in remap}
        self.jit_pending = {remap[k]: v for k, v in self.jit_pending.items() if k in remap}
        self._perf_map_size = {remap[k]: v for k, v in self._perf_map_size.items()
                               if k in remap}
        self.skip = {k for k in self.skip if os.path.isdir(f"/proc/{k[0]}")}

    def build(self, header: Header, lost: dict[str, int], first_bucket: int = 0) -> Recording:
        """A standalone Recording of what was collected since the last reset.

        Time buckets count from the sampler's start; in the file they count from
        `header.start_time_ns`, which is bucket `first_bucket`. Buckets outside the file's
        span (a count drained just after a rotation or the end) join its first or last.
        """
        stacks = list(self.stacks)
        used_procs = sorted({k[0] for k in self.samples})
        proc_map = {old: new for new, old in enumerate(used_procs)}
        self.end_drain(final=True)
        procs = [replace(self.table.processes[i], jit=tuple(
            sorted(self.jit.get(i, {}).values(), key=lambda j: j.start)),
            python=self._python_info(i)) for i in used_procs]
        procs, binaries = _prune_binaries(procs, self.table.binaries)
        kernel_addrs = {a for ks in {k[5] for k in self.samples} if ks >= 0
                        for a in stacks[ks]}
        in_vdso = any(m.path == "[vdso]" and any(m.start <= a < m.end for a in stacks[u])
                      for p, u in {(k[0], k[4]) for k in self.samples} if u >= 0
                      for m in self.table.processes[p].maps)
        res = header.time_resolution_ns
        last = max(0, (header.duration_ns - 1) // res) if res else 0
        rows = self.samples
        if first_bucket or any(k[8] > last for k in rows):  # else already in the file's span
            rows = {}
            for (p, tid, cpu, comm, u, k, ev, py, b), acc in self.samples.items():
                key = (p, tid, cpu, comm, u, k, ev, py, min(max(b - first_bucket, 0), last))
                row = rows.get(key)
                if row is None:
                    rows[key] = _Acc(acc.count, acc.weight)
                else:
                    row.count += acc.count
                    row.weight += acc.weight
        samples = tuple(
            Sample(process=proc_map[p], tid=tid, cpu=cpu, comm=comm, user_stack=u,
                   kernel_stack=k, count=acc.count, weight=acc.weight, event=ev,
                   python_stack=py, bucket=b)
            for (p, tid, cpu, comm, u, k, ev, py, b), acc in sorted(rows.items(),
                                                                    key=lambda kv: kv[0])
        )
        return Recording(
            header=header, binaries=tuple(binaries), processes=tuple(procs),
            stacks=tuple(stacks), samples=samples,
            kernel=kernel_info(kernel_addrs, with_vdso=in_vdso),
            lost=dict(lost), python_stacks=tuple(self.py_stacks),
        )

    def _python_info(self, proc: int) -> PythonInfo | None:
        rt = self.table.python.get(proc)
        if rt is None:
            return None
        codes = self.codes.get(proc)
        return PythonInfo(rt.version, tuple(codes.entries) if codes is not None else ())


def _prune_binaries(procs: list[Process], binaries: list[Binary]
                    ) -> tuple[list[Process], list[Binary]]:
    """Keep only the binaries the processes map, re-indexed."""
    used = sorted({m.binary for p in procs for m in p.maps if m.binary >= 0})
    remap = {old: new for new, old in enumerate(used)}
    out = [replace(p, maps=tuple(replace(m, binary=remap.get(m.binary, -1)) for m in p.maps))
           for p in procs]
    return out, [binaries[i] for i in used]


def _covered(known: dict[int, JitSymbol], address: int) -> bool:
    return any(j.start <= address < j.start + max(j.size, 1) for j in known.values())


def _perf_map_paths(pid: int, ns_pid: int) -> tuple[str, str]:
    return f"/proc/{pid}/root/tmp/perf-{ns_pid}.map", f"/tmp/perf-{pid}.map"


def perf_map_size(pid: int, ns_pid: int) -> int | None:
    """Size of the process's perf map, or None when it has none (or cannot be seen)."""
    for path in _perf_map_paths(pid, ns_pid):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        return st.st_size if stat.S_ISREG(st.st_mode) else None
    return None


def read_perf_map(pid: int, ns_pid: int) -> list[JitSymbol]:
    """Entries of the process's perf map (`/tmp/perf-NSPID.map` in its mount namespace).

    The process controls the file: it is read only when a regular file (not a symlink, a
    FIFO, a device or a kernel file), at most _MAX_PERF_MAP_BYTES, never blocking.
    """
    for path in _perf_map_paths(pid, ns_pid):
        try:
            data = read_regular(path, _MAX_PERF_MAP_BYTES, follow=False)
        except OSError:
            continue
        return parse_perf_map(data)
    return []


def parse_perf_map(data: bytes) -> list[JitSymbol]:
    """Parse `START SIZE NAME` lines (hex start and size), sorted by start; later wins.

    The process writes the file: only plain hex numbers (optional 0x) of at most 64 bits
    are taken (no sign, no underscores), anything else is skipped.
    """
    out: dict[int, JitSymbol] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 3 or not (_HEX64.fullmatch(parts[0]) and _HEX64.fullmatch(parts[1])):
            continue
        start, size = int(parts[0], 16), int(parts[1], 16)
        out[start] = JitSymbol(start, size, parts[2].strip())
    return sorted(out.values(), key=lambda j: j.start)


def rotated_path(path: os.PathLike[str] | str, sequence: int) -> str:
    """`out.bee` -> `out.0001.bee` for the files of a --rotate series."""
    base = os.fspath(path)
    stem, dot, suffix = base.rpartition(".")
    if not dot or "/" in suffix:
        return f"{base}.{sequence:04d}"
    return f"{stem}.{sequence:04d}.{suffix}"

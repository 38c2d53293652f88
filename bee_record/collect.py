"""Accumulate drained counts and turn them into standalone Recordings.

A Collector interns stacks and sums samples between file writes. `build()` makes a
Recording that stands alone: only the processes and binaries its samples use, the JIT
(perf map) entries covering its unmapped user addresses, and the kallsyms entries its
kernel addresses need. With `--rotate`, `reset()` starts the next file of the series.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

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
from bee_record.kallsyms import kernel_info
from bee_record.perfmap import PerfMap, PerfMapEntry, perf_map_paths
from bee_record.procs import ProcessTable
from bee_record.python.codeobj import CodeTable
from bee_record.sampler import RawCount


class Collector:
    """Turns drained counts into the recording's tables."""

    def __init__(self, table: ProcessTable, clock: Callable[[], int] | None = None) -> None:
        """`clock` gives the current time bucket (counted as the samples' are)."""
        self.table = table
        self.clock = clock
        self.stacks: dict[tuple[int, ...], int] = {}
        #: (process, tid, cpu, comm, user stack, kernel stack, event, python stack) -> time
        #: bucket since the sampler's start -> [count, weight]
        self.samples: dict[tuple[int, int, int, str, int, int, int, int],
                           dict[int, list[int]]] = {}
        #: Python stacks as (code index, info) pairs, and each CPython process's code table.
        self.py_stacks: dict[tuple[tuple[int, int], ...], int] = {}
        self.codes: dict[int, CodeTable] = {}
        self.drains = 0
        self._refreshed: set[int] = set()
        #: (pid, generation) pairs whose samples are dropped, e.g. the `--` command's
        #: child before its exec (it still runs bee's own code then).
        self.skip: set[tuple[int, int]] = set()
        #: JIT, per process index: its perf map as read so far (kept across the files of a
        #: series), the user addresses outside file mappings drained since the last
        #: `end_drain` with the time buckets of their samples, and the
        #: perf-map lines that named samples of the current file, with their buckets.
        #: Perf maps are read while the process lives (its /tmp may be a private mount
        #: that disappears with it).
        self._perf_maps: dict[int, PerfMap] = {}
        self.jit_pending: dict[int, dict[int, set[int]]] = {}
        self._last_bucket = 0  # the latest bucket of the samples drained so far
        self._watched = -1  # the bucket of the last watch_perf_maps read
        self.jit_used: dict[int, dict[int, tuple[PerfMapEntry, list[int]]]] = {}
        #: (process, user stack) -> its addresses outside file mappings
        self._jit_addresses: dict[tuple[int, int], tuple[int, ...]] = {}

    def _stack(self, value: tuple[int, ...] | int) -> int:
        if isinstance(value, int):
            return value
        idx = self.stacks.get(value)
        if idx is None:
            idx = self.stacks[value] = len(self.stacks)
        return idx

    def announced(self, pid: int, generation: int) -> None:
        """Capture a process generation the program announced, unless its samples are
        dropped (the command's child before its exec maps bee's own libraries: reading
        them, and building unwind tables for bcc's LLVM, would be wasted)."""
        if (pid, generation) not in self.skip:
            self.table.capture(pid, generation)

    def add(self, raw: RawCount) -> None:
        """Account the counts of one drained key (capturing its process if not seen yet).

        Everything but the time bucket is resolved once for all the key's buckets.
        """
        if (raw.pid, raw.generation) in self.skip or not raw.counts:
            return
        proc = self.table.index_of(raw.pid, raw.generation, raw.comm)
        user = self._stack(raw.user_stack)
        if isinstance(raw.user_stack, tuple):
            jit = self._jit_addresses.get((proc, user))
            if jit is None:
                # once per distinct (process, stack): the same stack comes back every drain
                jit = self._jit_addresses[(proc, user)] = self._check_user_stack(
                    proc, raw.user_stack)
            if jit:
                pending = self.jit_pending.setdefault(proc, {})
                for a in jit:
                    pending.setdefault(a, set()).update(b for b, _, _ in raw.counts)
        key = (proc, raw.tid, raw.cpu, raw.comm, user, self._stack(raw.kernel_stack),
               raw.event, self._python_stack(proc, raw.python_stack))
        buckets = self.samples.get(key)
        if buckets is None:
            buckets = self.samples[key] = {}
        last = self._last_bucket
        for bucket, count, weight in raw.counts:
            last = max(last, bucket)
            acc = buckets.get(bucket)
            if acc is None:
                buckets[bucket] = [count, weight]
            else:
                acc[0] += count
                acc[1] += weight
        self._last_bucket = last

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

    def _check_user_stack(self, proc: int, stack: tuple[int, ...]) -> tuple[int, ...]:
        """Refresh maps after dlopen; return the addresses outside file mappings (JIT)."""
        if proc not in self._refreshed and not all(self.table.covers(proc, a) for a in stack):
            self._refreshed.add(proc)
            self.table.refresh(proc)
        out = []
        for a in stack:
            path = self.table.mapped_path(proc, a)
            if path is None or is_anonymous(path):
                out.append(a)
        return tuple(out)

    def watch_perf_maps(self) -> None:
        """Read on the perf maps of processes that ran JIT code (call this often).

        Knowing within which time bucket each line appeared lets a drain name the samples
        taken before a line replaced another by the line they ran under.
        """
        bucket = self.clock() if self.clock is not None else None
        if bucket is None or bucket == self._watched:
            return  # one read per bucket tells all there is to know
        self._watched = bucket
        for perf_map in self._perf_maps.values():
            if perf_map.found:  # one not written yet is looked for at the drains only
                perf_map.update(bucket)

    def end_drain(self, final: bool = False) -> None:
        """Name the JIT addresses drained since the last call from their perf maps.

        Each perf map is read on from where the last read stopped; the line that named an
        address in a sample's time bucket (as far as the reads tell: at worst, the line
        current now) names the sample, and the bucket is added to that line's range.
        Addresses no perf map names yet are tried again at the next call (given up at the
        `final` one). Also allows new maps refreshes.
        """
        self._refreshed.clear()
        bucket = self.clock() if self.clock is not None else None
        self.drains += 1
        for proc, pending in list(self.jit_pending.items()):
            perf_map = self._perf_maps.get(proc)
            if perf_map is None:
                p = self.table.processes[proc]
                perf_map = self._perf_maps[proc] = PerfMap(perf_map_paths(p.pid, p.ns_pid))
            perf_map.update(bucket)
            if not perf_map.lines:  # nothing to name them with (yet): none would be found
                if final:
                    del self.jit_pending[proc]
                continue
            used = self.jit_used.setdefault(proc, {})
            for a, buckets in list(pending.items()):
                for b in list(buckets):
                    entry = perf_map.lookup_at(a, b)
                    if entry is None:
                        continue
                    buckets.discard(b)
                    got = used.get(entry.line)
                    if got is None:
                        used[entry.line] = (entry, [b, b])
                    else:
                        span = got[1]
                        span[0], span[1] = min(span[0], b), max(span[1], b)
                if not buckets:
                    del pending[a]
            if not pending or final:
                del self.jit_pending[proc]
        # samples drained from now on were taken after this drain's flip
        for perf_map in self._perf_maps.values():
            perf_map.forget(self._last_bucket)

    def reset(self) -> None:
        """Start a new file: forget samples, stacks and exited processes."""
        self.stacks = {}
        self.samples = {}
        self._jit_addresses = {}
        self.jit_used = {}
        self.py_stacks = {}
        remap = self.table.prune_exited()
        self.codes = {remap[k]: v for k, v in self.codes.items() if k in remap}
        for codes in self.codes.values():
            codes.start_file()
        self.jit_pending = {remap[k]: v for k, v in self.jit_pending.items() if k in remap}
        self._perf_maps = {remap[k]: v for k, v in self._perf_maps.items() if k in remap}
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
        res = header.time_resolution_ns
        last = max(0, (header.duration_ns - 1) // res) if res else 0

        def in_file(bucket: int) -> int:
            return min(max(bucket - first_bucket, 0), last)

        procs = [replace(self.table.processes[i], jit=tuple(
            JitSymbol(e.start, e.size, e.name, in_file(span[0]), in_file(span[1]))
            for _, (e, span) in sorted(self.jit_used.get(i, {}).items())),
            python=self._python_info(i)) for i in used_procs]
        procs, binaries = _prune_binaries(procs, self.table.binaries)
        kernel_addrs = {a for ks in {k[5] for k in self.samples} if ks >= 0
                        for a in stacks[ks]}
        in_vdso = any(m.path == "[vdso]" and any(m.start <= a < m.end for a in stacks[u])
                      for p, u in {(k[0], k[4]) for k in self.samples} if u >= 0
                      for m in self.table.processes[p].maps)
        samples: list[Sample] = []
        for (p, tid, cpu, comm, u, k, ev, py), buckets in sorted(self.samples.items(),
                                                                 key=lambda kv: kv[0]):
            rows = buckets
            if first_bucket or max(buckets) > last:  # else already in the file's span
                rows = {}
                for b, (count, weight) in buckets.items():
                    at = in_file(b)
                    row = rows.get(at)
                    if row is None:
                        rows[at] = [count, weight]
                    else:
                        row[0] += count
                        row[1] += weight
            samples.extend(
                Sample(proc_map[p], tid, cpu, comm, u, k, count, weight, ev, py, b)
                for b, (count, weight) in sorted(rows.items()))
        return Recording(
            header=header, binaries=tuple(binaries), processes=tuple(procs),
            stacks=tuple(stacks), samples=tuple(samples),
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


def rotated_path(path: os.PathLike[str] | str, sequence: int) -> str:
    """`out.bee` -> `out.0001.bee` for the files of a --rotate series."""
    base = os.fspath(path)
    stem, dot, suffix = base.rpartition(".")
    if not dot or "/" in suffix:
        return f"{base}.{sequence:04d}"
    return f"{stem}.{sequence:04d}.{suffix}"

"""Capture what the report side needs about processes, read from /proc on the target.

For each process generation first seen in the samples: comm, executable, command line,
parent and namespace pid, and its executable mappings. Each mapped ELF file becomes a
Binary with its build-id, read through `/proc/PID/map_files` (so a binary deleted or
replaced after the process started still resolves) or `/proc/PID/root` (containers).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from bee_contract.buildid import build_id_of_file
from bee_contract.recording import Binary, Mapping, Process
from bee_contract.safeopen import open_regular, read_regular
from bee_record.python.detect import Detector, PyRuntime

_DELETED = " (deleted)"
_MAX_THREADS_TRIED = 64


@dataclass
class _Live:
    """A process generation being tracked while recording."""

    process: Process
    starts: list[int] = field(default_factory=list)


def _read_text(path: str, limit: int = 1 << 20) -> str | None:
    """A /proc file of a process, at most `limit` bytes (never blocks: see safeopen)."""
    try:
        return read_regular(path, limit, pseudo=True).decode("utf-8", "replace")
    except OSError:
        return None


def parse_maps(text: str) -> list[tuple[int, int, int, int, int, str]]:
    """Parse /proc/PID/maps text; keep executable mappings.

    Returns (start, end, offset, dev, inode, path) tuples; `path` keeps special names such
    as `[vdso]` and drops the ` (deleted)` suffix.
    """
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5 or "x" not in parts[1]:
            continue
        try:
            lo, hi = (int(x, 16) for x in parts[0].split("-", 1))
            offset = int(parts[2], 16)
            major, minor = (int(x, 16) for x in parts[3].split(":", 1))
            inode = int(parts[4])
        except ValueError:
            continue
        path = parts[5].strip() if len(parts) > 5 else ""
        if path.endswith(_DELETED):
            path = path[: -len(_DELETED)]
        out.append((lo, hi, offset, os.makedev(major, minor), inode, path))
    return out


class ProcessTable:
    """Processes and binaries seen so far, in the order they were first seen."""

    def __init__(self, keep_cmdline: bool = True, proc: str = "/proc",
                 on_maps: Callable[[Process, list[Binary]], None] | None = None,
                 python: bool = False) -> None:
        self.keep_cmdline = keep_cmdline
        self.proc = proc
        #: called with a process (and the binaries) whenever its maps were read
        self.on_maps = on_maps
        #: CPython runtimes found, per process index (only when `python` is on), and who
        #: to tell about each (the sampler, which then walks that process's frames).
        self.python: dict[int, PyRuntime] = {}
        self.on_python: Callable[[int, int, PyRuntime], None] | None = None
        self._detector = Detector() if python else None
        self.processes: list[Process] = []
        self.binaries: list[Binary] = []
        self._index: dict[tuple[int, int], int] = {}
        self._live: dict[int, _Live] = {}
        self._binary_index: dict[tuple[int, int, str], int] = {}

    def index_of(self, pid: int, generation: int, comm: str = "") -> int:
        """Index of (pid, generation), capturing it from /proc when first seen."""
        idx = self._index.get((pid, generation))
        if idx is None:
            idx = self.capture(pid, generation, comm)
        return idx

    def capture(self, pid: int, generation: int, comm: str = "") -> int:
        """Read a process's details now: a new generation, or more maps for a known one."""
        key = (pid, generation)
        idx = self._index.get(key)
        if idx is not None:
            self.refresh(idx)
        else:
            proc = self._read_process(pid, generation, comm)
            idx = self._index[key] = len(self.processes)
            self.processes.append(proc)
            self._live[idx] = _Live(proc, [m.start for m in proc.maps])
            self._notify(proc)
        self._detect_python(idx)
        return idx

    def _notify(self, proc: Process) -> None:
        if self.on_maps is not None and proc.maps:
            self.on_maps(proc, self.binaries)

    def _detect_python(self, idx: int) -> None:
        """Look for CPython in a process generation until found (libpython may load late)."""
        if self._detector is None or idx in self.python:
            return
        p = self.processes[idx]
        rt = self._detector.detect(p.pid, p.exe, p.maps, self.proc)
        if rt is None:
            return
        self.python[idx] = rt
        if self.on_python is not None:
            self.on_python(p.pid, p.generation, rt)

    def python_index(self, pid: int) -> int | None:
        """Index of the newest generation of `pid` known to run CPython, or None."""
        found = [i for i in self.python if self.processes[i].pid == pid]
        return max(found) if found else None

    def covers(self, idx: int, address: int) -> bool:
        """True when a known mapping of process `idx` contains `address`."""
        live = self._live.get(idx)
        if live is None:
            return True
        i = bisect.bisect_right(live.starts, address) - 1
        return i >= 0 and address < live.process.maps[i].end

    def prune_exited(self) -> dict[int, int]:
        """Forget processes that have exited (between files of a --rotate series).

        Keeps memory flat over long runs with process churn. Of a pid that lives on, only
        its newest generation is kept: older ones exec'd or exited (their pid recycled).
        Returns the old -> new index map of the processes kept. Binaries are kept (few,
        and shared).
        """
        newest: dict[int, int] = {}
        for p in self.processes:
            newest[p.pid] = max(newest.get(p.pid, p.generation), p.generation)
        keep = [i for i, p in enumerate(self.processes)
                if p.generation == newest[p.pid] and os.path.isdir(f"{self.proc}/{p.pid}")]
        remap = {old: new for new, old in enumerate(keep)}
        self.processes = [self.processes[i] for i in keep]
        self._index = {k: remap[v] for k, v in self._index.items() if v in remap}
        self._live = {remap[k]: v for k, v in self._live.items() if k in remap}
        self.python = {remap[k]: v for k, v in self.python.items() if k in remap}
        return remap

    def mapped_path(self, idx: int, address: int) -> str | None:
        """Path of the known mapping of process `idx` holding `address` (None: unmapped)."""
        maps = self.processes[idx].maps
        live = self._live.get(idx)
        starts = live.starts if live is not None else [m.start for m in maps]
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and address < maps[i].end:
            return maps[i].path
        return None

    def refresh(self, idx: int) -> None:
        """Re-read maps (after dlopen or JIT); keeps mappings no longer present."""
        old = self.processes[idx]
        fresh = self._read_process(old.pid, old.generation, old.comm)
        if not fresh.maps or (fresh.exe != old.exe and old.exe):
            return
        if not old.maps:  # first read failed or came too early: take the fresh one whole
            self.processes[idx] = fresh
            self._live[idx] = _Live(fresh, [m.start for m in fresh.maps])
            self._notify(fresh)
            return
        if fresh.maps != old.maps:
            self._notify(fresh)  # the live mappings only, not those since unmapped
        merged = {m.start: m for m in old.maps}
        merged.update({m.start: m for m in fresh.maps})
        maps = tuple(sorted(merged.values(), key=lambda m: m.start))
        proc = Process(old.pid, old.generation, old.ns_pid, old.ppid, old.comm, old.exe,
                       old.cmdline, maps, old.jit)
        self.processes[idx] = proc
        self._live[idx] = _Live(proc, [m.start for m in maps])

    def _read_process(self, pid: int, generation: int, comm: str) -> Process:
        base = f"{self.proc}/{pid}"
        maps_text = _read_text(f"{base}/maps") or ""
        if not maps_text:
            base, maps_text = self._live_thread(pid)
        # comm and status of the process itself (a thread's name and ids differ)
        comm = (_read_text(f"{self.proc}/{pid}/comm") or comm).rstrip("\n") or comm
        try:
            exe = os.readlink(f"{base}/exe")
        except OSError:
            exe = ""
        if exe.endswith(_DELETED):
            exe = exe[: -len(_DELETED)]
        cmdline: tuple[str, ...] | None = None
        if self.keep_cmdline:
            raw = _read_text(f"{base}/cmdline")
            if raw:
                cmdline = tuple(raw.rstrip("\0").split("\0"))
        ppid, ns_pid = 0, pid
        status = _read_text(f"{self.proc}/{pid}/status") or ""
        for line in status.splitlines():
            if line.startswith("PPid:"):
                ppid = _int(line[5:], 0)
            elif line.startswith("NSpid:"):
                ns_pid = _int(line.split()[-1], pid)
        maps = []
        for lo, hi, offset, dev, inode, path in parse_maps(maps_text):
            binary = self._binary(pid, base, lo, hi, dev, inode, path)
            maps.append(Mapping(lo, hi, offset, dev, inode, path, binary))
        return Process(pid, generation, ns_pid, ppid, comm, exe, cmdline, tuple(maps))

    def _live_thread(self, pid: int) -> tuple[str, str]:
        """/proc folder and maps of a thread of `pid` that still runs.

        When the main thread has exited (`pthread_exit` in `main`) while others run on,
        /proc/PID shows a zombie: no maps, exe, command line or root. Its threads'
        folders (/proc/PID/task/TID) still show them.
        """
        base = f"{self.proc}/{pid}"
        try:
            tids = sorted(os.listdir(f"{base}/task"))[:_MAX_THREADS_TRIED]
        except OSError:
            return base, ""
        for tid in tids:
            text = _read_text(f"{base}/task/{tid}/maps")
            if text:
                return f"{base}/task/{tid}", text
        return base, ""

    def _binary(self, pid: int, base: str, lo: int, hi: int, dev: int, inode: int,
                path: str) -> int:
        if not path.startswith("/"):
            return -1
        key = (dev, inode, path)
        idx = self._binary_index.get(key)
        if idx is not None:
            return idx
        build_id = None
        size = 0
        for candidate in (f"{self.proc}/{pid}/map_files/{lo:x}-{hi:x}",
                          f"{base}/root{path}", path):
            # the process controls these paths: a FIFO or device there is never opened
            try:
                with open_regular(candidate) as f:
                    build_id = build_id_of_file(f)
                    size = os.fstat(f.fileno()).st_size
            except OSError:
                continue
            if build_id is not None:
                break
            size = 0
        idx = self._binary_index[key] = len(self.binaries)
        self.binaries.append(Binary(path, build_id, size))
        return idx


def _int(text: str, default: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default

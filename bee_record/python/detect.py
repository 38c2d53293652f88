"""Find the CPython runtime of a process: which file, which version, where `_PyRuntime` is.

Candidates are the executable and any mapped file named like `python3.X` or
`libpython3.X...`; each is read once per file (cached by device and inode). A candidate is
CPython when it defines `_PyRuntime`; the version comes from `Py_Version` (3.11+, read
from the file) or the file name (3.10). Debug builds (`_Py_NegativeRefcount`), free-threaded
builds and versions outside 3.10-3.13 are not walked. The struct offsets come from
`layout.TABLES`, or for 3.13 from the `_Py_DebugOffsets` the live interpreter carries.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

from bee_contract.recording import Mapping
from bee_contract.safeopen import open_regular
from bee_record.python.elfsyms import ElfFacts, read_facts
from bee_record.python.layout import (
    DEBUG_OFFSETS_SIZE,
    SUPPORTED,
    TABLES,
    LayoutError,
    PyLayout,
    from_debug_offsets,
)
from bee_record.python.memory import ProcessMemory

_NAME = re.compile(r"^(?:lib)?python3\.(\d+)")
_WANTED = frozenset({"_PyRuntime", "Py_Version", "PyCode_Type", "_Py_NegativeRefcount"})
#: offsetof(struct pthread, tid) in glibc on x86-64 (stable for a decade); checked live.
GLIBC_PTHREAD_TID = 0x2D0
_PTHREAD_SCAN = 0x800
_MAX_THREAD_STATES = 64


@dataclass(frozen=True, slots=True)
class PyRuntime:
    """A CPython runtime found in one process."""

    path: str  # the file defining _PyRuntime (executable or libpython)
    version: int  # PY_VERSION_HEX style: 0x030b07f0; minor only known for 3.10 (0x030a0000)
    runtime: int  # address of _PyRuntime in the process
    code_type: int  # address of PyCode_Type in the process (0 when unknown)
    layout: PyLayout
    pthread_tid: int  # 3.10: offset of the kernel tid in struct pthread; -1 otherwise

    @property
    def minor(self) -> int:
        """The minor version (10 for 3.10)."""
        return self.layout.minor


class Detector:
    """Detects CPython in processes, reading each candidate file once."""

    def __init__(self) -> None:
        self._files: dict[tuple[int, int, str], ElfFacts | None] = {}

    def detect(self, pid: int, exe: str, maps: tuple[Mapping, ...],
               proc: str = "/proc") -> PyRuntime | None:
        """The CPython runtime of process `pid`, or None when it is not a CPython it walks."""
        seen: set[str] = set()
        for m in maps:
            base = os.path.basename(m.path)
            if m.path in seen or not m.path.startswith("/"):
                continue
            if m.path != exe and not _NAME.match(base):
                continue
            seen.add(m.path)
            facts = self._facts(pid, m, proc)
            if facts is None or "_PyRuntime" not in facts.symbols:
                continue
            return _runtime(pid, m, facts, proc)
        return None

    def _facts(self, pid: int, m: Mapping, proc: str) -> ElfFacts | None:
        key = (m.dev, m.inode, m.path)
        if key in self._files:
            return self._files[key]
        facts = None
        for candidate in (f"{proc}/{pid}/map_files/{m.start:x}-{m.end:x}",
                          f"{proc}/{pid}/root{m.path}"):
            try:
                with open_regular(candidate) as f:  # the target controls it: see safeopen
                    facts = read_facts(f, _WANTED)
                    if facts.loads:
                        facts = _with_version(f, facts)
                        break
            except OSError:
                continue
        self._files[key] = facts
        return facts


def _with_version(f: object, facts: ElfFacts) -> ElfFacts:
    """Read Py_Version from the file into the symbols as `__version__`."""
    addr = facts.symbols.get("Py_Version")
    if addr is None:
        return facts
    off = facts.file_offset(addr, 4)
    if off is None:
        return facts
    f.seek(off)  # type: ignore[attr-defined]
    raw = f.read(4)  # type: ignore[attr-defined]
    if len(raw) == 4:
        facts.symbols["__version__"] = struct.unpack("<I", raw)[0]
    return facts


def _runtime(pid: int, m: Mapping, facts: ElfFacts, proc: str) -> PyRuntime | None:
    if "_Py_NegativeRefcount" in facts.symbols:
        return None  # a debug build: every object has a different header
    version = facts.symbols.get("__version__")
    if version is None:
        named = _NAME.match(os.path.basename(m.path))
        if named is None or int(named.group(1)) != 10:
            return None
        version = 0x030A0000
    if version >> 24 != 3 or (version >> 16) & 0xFF not in SUPPORTED:
        return None
    minor = (version >> 16) & 0xFF
    bias = facts.bias(m.start, m.offset)
    if bias is None:
        return None
    runtime = bias + facts.symbols["_PyRuntime"]
    code_type = bias + facts.symbols["PyCode_Type"] if "PyCode_Type" in facts.symbols else 0
    mem = ProcessMemory(pid)
    if minor in TABLES:
        layout = TABLES[minor]
    else:
        data = mem.read(runtime, DEBUG_OFFSETS_SIZE)
        if data is None:
            return None
        try:
            layout = from_debug_offsets(data)
        except LayoutError:
            return None
    pthread_tid = -1
    if layout.tstate_native_thread_id < 0:
        pthread_tid = pthread_tid_offset(mem, runtime, layout, _tids(pid, proc))
    return PyRuntime(m.path, version, runtime, code_type, layout, pthread_tid)


def _tids(pid: int, proc: str) -> set[int]:
    try:
        return {int(t) for t in os.listdir(f"{proc}/{pid}/task") if t.isdigit()}
    except OSError:
        return {pid}


def thread_states(mem: ProcessMemory, runtime: int, layout: PyLayout) -> list[int]:
    """Addresses of the thread states of the first interpreter (bounded)."""
    interp = mem.read_u64(runtime + layout.runtime_interp_head)
    out: list[int] = []
    t = mem.read_u64(interp + layout.interp_threads_head) if interp else None
    while t and len(out) < _MAX_THREAD_STATES and t not in out:
        out.append(t)
        t = mem.read_u64(t + layout.tstate_next)
    return out


def pthread_tid_offset(mem: ProcessMemory, runtime: int, layout: PyLayout,
                       tids: set[int]) -> int:
    """Where glibc (or another libc) keeps the kernel tid in its `struct pthread`.

    3.10 stores only `pthread_self()` in its thread states; bee matches a sampled thread
    through the tid inside that struct. The offset is checked against a live thread
    state (glibc's 0x2d0 first, then a scan of the struct's first 2 KiB for a tid of the
    process); glibc's value is kept when no thread state exists yet.
    """
    for tstate in thread_states(mem, runtime, layout):
        handle = mem.read_u64(tstate + layout.tstate_thread_id)
        if not handle:
            continue
        data = mem.read(handle, _PTHREAD_SCAN)
        if data is None:
            continue
        if struct.unpack_from("<I", data, GLIBC_PTHREAD_TID)[0] in tids:
            return GLIBC_PTHREAD_TID
        for off in range(0, _PTHREAD_SCAN - 4, 4):
            if struct.unpack_from("<i", data, off)[0] in tids:
                return off
    return GLIBC_PTHREAD_TID

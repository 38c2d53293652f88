"""bee's CPython offset tables against the real interpreters and headers on this machine."""

from __future__ import annotations

import glob
import os
import subprocess
import time
from pathlib import Path

import pytest

from bee_record.procs import ProcessTable
from bee_record.python import layout
from bee_record.python.detect import Detector, thread_states
from bee_record.python.memory import ProcessMemory

FIXTURES = Path(__file__).parent / "fixtures" / "python"
PREFIXES = sorted(glob.glob("/root/.pyenv/versions/3.1[0-3].*"))

# offsets.c prints "name value"; the layout field each name checks
_FIELDS = {
    "runtime.interpreters_head": "runtime_interp_head", "interp.next": "interp_next",
    "interp.threads_head": "interp_threads_head", "tstate.next": "tstate_next",
    "tstate.thread_id": "tstate_thread_id", "tstate.native_thread_id": "tstate_native_thread_id",
    "tstate.frame": "tstate_frame", "tstate.cframe": "tstate_frame",
    "tstate.current_frame": "tstate_frame", "cframe.current_frame": "cframe_current_frame",
    "frame.f_back": "frame_previous", "frame.f_code": "frame_code", "frame.f_lasti": "frame_instr",
    "iframe.previous": "frame_previous", "iframe.code": "frame_code",
    "iframe.instr": "frame_instr", "iframe.owner": "frame_owner",
    "iframe.is_entry": "frame_is_entry", "code.co_code_adaptive": "code_adaptive",
    "code.co_qualname": "code_qualname", "code.co_filename": "code_filename",
    "code.co_name": "code_name", "code.co_firstlineno": "code_firstlineno",
    "code.co_linetable": "code_linetable", "unicode.state": "unicode_state",
    "unicode.length": "unicode_length", "sizeof.ascii": "unicode_ascii_size",
    "sizeof.compact": "unicode_compact_size", "bytes.ob_size": "bytes_size",
    "bytes.ob_sval": "bytes_sval",
}


def _header_offsets(prefix: str, tmp_path: Path) -> dict[str, int]:
    minor = os.path.basename(prefix).rsplit(".", 1)[0]
    inc = f"{prefix}/include/python{minor}"
    exe = tmp_path / "offsets"
    subprocess.run(["gcc", f"-I{inc}", f"-I{inc}/internal", str(FIXTURES / "offsets.c"),
                    "-o", str(exe)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def _live(python: str) -> tuple[subprocess.Popen[bytes], layout.PyLayout, int]:
    proc = subprocess.Popen([python, "-c", "import time; time.sleep(30)"])
    time.sleep(0.5)
    table = ProcessTable(python=True)
    idx = table.capture(proc.pid, 0)
    rt = table.python.get(idx)
    if rt is None:
        proc.kill()
        pytest.fail(f"{python}: CPython not detected")
    return proc, rt.layout, rt.runtime


@pytest.mark.parametrize("prefix", PREFIXES)
def test_layout_matches_headers(prefix: str, tmp_path: Path) -> None:
    # GIVEN the interpreter's own headers compiled into an offsetof() program
    want = _header_offsets(prefix, tmp_path)
    minor = int(os.path.basename(prefix).split(".")[1])
    # WHEN bee's layout is taken (its table, or for 3.13 the live _Py_DebugOffsets)
    python = f"{prefix}/bin/python3.{minor}"
    proc, got, _ = _live(python)
    proc.kill()
    proc.wait()
    # THEN every offset bee uses agrees with the compiler
    for name, value in want.items():
        if name in _FIELDS:
            assert getattr(got, _FIELDS[name]) == value, name
    assert got.minor == minor


@pytest.mark.parametrize("python", ["/usr/bin/python3.11", *(
    f"{p}/bin/python3.{p.rsplit('/', 1)[1].split('.')[1]}" for p in PREFIXES)])
def test_thread_states_hold_the_live_thread_ids(python: str) -> None:
    # GIVEN a live interpreter
    proc, lay, runtime = _live(python)
    try:
        # WHEN its thread states are listed from _PyRuntime
        mem = ProcessMemory(proc.pid)
        states = thread_states(mem, runtime, lay)
        # THEN the main thread's state holds the kernel thread id (3.11+) or a pthread_t
        assert states
        if lay.tstate_native_thread_id >= 0:
            assert mem.read_u64(states[-1] + lay.tstate_native_thread_id) == proc.pid
        else:
            handle = mem.read_u64(states[-1] + lay.tstate_thread_id)
            assert handle and mem.read(handle, 8) is not None
    finally:
        proc.kill()
        proc.wait()


def test_debug_offsets_refused_when_not_313() -> None:
    # GIVEN a 3.14-like table and a free-threaded 3.13 table
    base = bytearray(layout.DEBUG_OFFSETS_SIZE)
    base[:8] = b"xdebugpy"
    newer = bytes(base[:8]) + (0x030E0000).to_bytes(8, "little") + bytes(base[16:])
    free = bytes(base[:8]) + (0x030D0000).to_bytes(8, "little") + (1).to_bytes(8, "little") \
        + bytes(base[24:])
    # THEN both are refused with LayoutError, as is garbage
    for data in (newer, free, b"garbage"):
        with pytest.raises(layout.LayoutError):
            layout.from_debug_offsets(data)


def test_detector_ignores_non_python(tmp_path: Path) -> None:
    # GIVEN a process that is not CPython
    proc = subprocess.Popen(["sleep", "5"])
    time.sleep(0.2)
    try:
        table = ProcessTable()
        idx = table.capture(proc.pid, 0)
        p = table.processes[idx]
        # THEN nothing is detected
        assert Detector().detect(p.pid, p.exe, p.maps) is None
    finally:
        proc.kill()
        proc.wait()

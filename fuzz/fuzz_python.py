"""atheris target: Python frame names from hostile memory and hostile line tables.

    .venv/bin/python fuzz/fuzz_python.py -atheris_runs=200000 CORPUS_DIR

Each input is split into a line table (3.10 pairs or the 3.11+ location table), the index
of an instruction, and bytes standing where a code object, str or bytes object should be
in a recorded process (read back through process_vm_readv of this process, as the
recorder does). Findings: any exception, a line table giving more ranges than bytes, a
string past its cap, a code object's entry that is not its own address.
"""

from __future__ import annotations

import ctypes
import os

import atheris
from atheris_main import run

with atheris.instrument_imports():
    from bee_contract.recording import PY_ENTRY, PY_TRUNCATED, PythonCode, PythonInfo
    from bee_record.python.codeobj import MAX_FILENAME, MAX_NAME, read_bytes, read_code, read_str
    from bee_record.python.detect import PyRuntime
    from bee_record.python.layout import TABLES
    from bee_record.python.memory import ProcessMemory
    from bee_report.python.frames import python_frames
    from bee_report.python.lines import line_of, ranges_311

_MINORS = sorted(TABLES)
_MEM = ProcessMemory(os.getpid())


def one_input(data: bytes) -> None:
    """Parse one input as a line table and as a code object's memory."""
    fdp = atheris.FuzzedDataProvider(data)
    minor = _MINORS[fdp.ConsumeIntInRange(0, len(_MINORS) - 1)]
    version = 0x03000000 | minor << 16
    first = fdp.ConsumeIntInRange(-5, 1 << 31)
    index = fdp.ConsumeIntInRange(-5, 1 << 16)
    table = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 1024))
    line = line_of(version, table, first, index)
    assert line is None or isinstance(line, int)
    assert sum(1 for _ in ranges_311(table, first)) <= len(table)

    code = PythonCode(0x1000, "f", "/app/f.py", max(first, 0), table)
    info = PythonInfo(version, (code,))
    at = max(index, 0)
    stack = ((0, at), (PY_TRUNCATED, 0), (0, at | PY_ENTRY))
    frames = python_frames(info, stack)
    assert sum(len(g) for g in frames) == len(stack)

    memory = fdp.ConsumeBytes(4096)
    buf = ctypes.create_string_buffer(memory, len(memory) + 256)
    addr = ctypes.addressof(buf)
    layout = TABLES[minor]
    text = read_str(_MEM, addr, layout, 64)
    assert text is None or len(text) <= 64
    raw = read_bytes(_MEM, addr, layout, 64)
    assert raw is None or len(raw) <= 64
    rt = PyRuntime("/x", version, 0, 0, layout, -1)
    got, ident = read_code(_MEM, addr, rt)
    assert got.address == addr
    assert len(got.qualname) <= MAX_NAME and len(got.filename) <= MAX_FILENAME
    assert ident is not None or (got.qualname, got.filename) == ("", "")


if __name__ == "__main__":
    run(one_input)

"""Line tables of recorded code objects: every CPython on this machine is the oracle."""

from __future__ import annotations

import ctypes
import glob
import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bee_contract.recording import PY_ENTRY, PythonCode, PythonInfo
from bee_record.python.codeobj import read_code, read_str
from bee_record.python.detect import PyRuntime
from bee_record.python.layout import TABLES
from bee_record.python.memory import ProcessMemory
from bee_report.profile import Frame, FrameKind
from bee_report.python.frames import EVAL_FUNCTION, merge, python_frames
from bee_report.python.lines import LineIndex, line_of, ranges_311

FIXTURES = Path(__file__).parent / "fixtures" / "python"
INTERPRETERS = sorted(
    p for p in ["/usr/bin/python3.11",
                *glob.glob("/root/.pyenv/versions/3.1[0-3].*/bin/python3.1[0-3]")]
    if os.access(p, os.X_OK))


@pytest.mark.parametrize("python", INTERPRETERS)
def test_lines_match_co_lines(python: str) -> None:
    # GIVEN the line tables of ~600 stdlib code objects and what co_lines() says of them
    out = subprocess.run([python, str(FIXTURES / "dump_lines.py")], capture_output=True,
                         check=True).stdout
    data = json.loads(out)
    checked = 0
    for code in data["codes"]:
        table = bytes.fromhex(code["table"])
        index = LineIndex(data["version"], table, code["first"])
        for start, end, line in code["lines"]:
            for offset in range(start, end, 2):
                # THEN bee's parser gives the same line for every instruction, walking the
                # table or from the table decoded once
                assert line_of(data["version"], table, code["first"], offset // 2) == line
                assert index.line(offset // 2) == line
                checked += 1
    assert checked > 10000


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.integers(-5, 1 << 31), st.integers(-5, 4096),
       st.sampled_from([0x030A0000, 0x030B0000, 0x030C0000, 0x030D0000]))
def test_hostile_line_tables_never_raise(table: bytes, first: int, index: int,
                                         version: int) -> None:
    # GIVEN any bytes as a line table: a line or None, no exception, bounded work
    got = line_of(version, table, first, index)
    assert got is None or isinstance(got, int)
    assert sum(1 for _ in ranges_311(table, first)) <= len(table)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.integers(-5, 1 << 31),
       st.lists(st.integers(-5, 4096), min_size=1, max_size=20),
       st.sampled_from([0x030A0000, 0x030B0000, 0x030C0000, 0x030D0000]))
def test_line_index_answers_as_line_of(table: bytes, first: int, indexes: list[int],
                                       version: int) -> None:
    # GIVEN any bytes as a line table, decoded once into an index
    index = LineIndex(version, table, first)
    # WHEN instructions are looked up in it
    # THEN each line is the one the table's own walk gives
    assert [index.line(i) for i in indexes] == [line_of(version, table, first, i)
                                               for i in indexes]


def _memory_with(data: bytes) -> tuple[ProcessMemory, int, ctypes.Array[ctypes.c_char]]:
    buf = ctypes.create_string_buffer(data, len(data) + 64)
    return ProcessMemory(os.getpid()), ctypes.addressof(buf), buf


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=72, max_size=400), st.sampled_from(sorted(TABLES)))
def test_hostile_strings_are_bounded(data: bytes, minor: int) -> None:
    # GIVEN arbitrary bytes where a str object should be
    mem, addr, _keep = _memory_with(data)
    # WHEN it is read as a str with a cap of 16 characters
    got = read_str(mem, addr, TABLES[minor], 16)
    # THEN it is None or at most 16 characters, and nothing raised
    assert got is None or len(got) <= 16


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=256, max_size=256), st.sampled_from(sorted(TABLES)))
def test_hostile_code_objects_give_unnamed_entries(data: bytes, minor: int) -> None:
    # GIVEN arbitrary bytes where a code object should be (pointers into nowhere)
    mem, addr, _keep = _memory_with(data)
    rt = PyRuntime("/x", 0x03000000 | minor << 16, 0, 0, TABLES[minor], -1)
    # WHEN it is read
    code, ident = read_code(mem, addr, rt)
    # THEN an entry comes back (unnamed when unreadable) with capped strings, no exception
    assert code.address == addr
    assert ident is not None or (code.qualname, code.filename) == ("", "")
    assert len(code.qualname) <= 512 and len(code.filename) <= 4096


def test_real_code_object_is_read() -> None:
    # GIVEN this (Debian 3.11 or other) interpreter's own code object
    import sys

    minor = sys.version_info.minor
    if minor not in TABLES:
        pytest.skip("the test interpreter's version has no table")

    def probe() -> None:
        pass

    rt = PyRuntime("/x", sys.hexversion, 0, id(type(probe.__code__)), TABLES[minor], -1)
    code, ident = read_code(ProcessMemory(os.getpid()), id(probe.__code__), rt)
    # THEN names, file, first line and line table are the object's
    assert ident is not None
    assert code.qualname == probe.__code__.co_qualname
    assert code.filename == __file__
    assert code.firstlineno == probe.__code__.co_firstlineno
    assert code.linetable == probe.__code__.co_linetable


def _py(name: str) -> PythonCode:
    return PythonCode(hash(name) & 0xFFFF, name, f"/app/{name}.py", 10, b"")


def test_merge_replaces_each_eval_activation_in_order() -> None:
    # GIVEN a native stack with two eval activations and a Python stack of two eval calls
    info = PythonInfo(0x030B0000, (_py("leaf"), _py("mid"), _py("outer")))
    groups = python_frames(info, [(0, 0), (1, PY_ENTRY), (2, PY_ENTRY)])
    native = [Frame(n) for n in ("main", EVAL_FUNCTION, "call", EVAL_FUNCTION, "sre_match")]
    # WHEN merged
    got = [f.name.split(" (")[0] for f in merge(native, groups)]
    # THEN each activation holds its own frames, root first
    assert got == ["main", "outer", "call", "mid", "leaf", "sre_match"]
    assert all(f.kind is FrameKind.PYTHON for f in merge(native, groups)
               if f.name.startswith(("outer", "mid", "leaf")))


def test_merge_without_eval_frames_puts_python_at_the_root() -> None:
    # GIVEN a native stack that stopped early (no eval frame)
    info = PythonInfo(0x030C0000, (_py("regex"), _py("main")))
    groups = python_frames(info, [(0, 0), (1, PY_ENTRY)])
    # THEN the Python frames are kept, above (calling) the native frames
    got = [f.name.split(" (")[0] for f in merge([Frame("sre_ucs1_match")], groups)]
    assert got == ["main", "regex", "sre_ucs1_match"]


def test_python_frames_have_their_own_flame_colour() -> None:
    # GIVEN folded Python, native and kernel frames
    from bee_report.reporters.flame_palette import frame_kind

    # THEN `_[py]` is recognised as a Python frame and stripped from the label
    split = FrameKind.split_folded
    assert split("handle (app.py:12)_[py]") == ("handle (app.py:12)", FrameKind.PYTHON)
    assert split("main") == ("main", None)
    assert frame_kind("handle (app.py:12)_[py]", ["app"]) == FrameKind.PYTHON


def test_lines_option_names_the_sampled_line() -> None:
    # GIVEN a Python frame of a function defined at line 10, sampled at line 12
    frame = Frame("handle (app.py:10)", FrameKind.PYTHON, "[python]", "/srv/app.py", 12)
    # THEN folded output names the function, or with --lines the sampled line
    assert frame.folded() == "handle (app.py:10)_[py]"
    assert frame.folded(lines=True) == "handle (app.py:12)_[py]"

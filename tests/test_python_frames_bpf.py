"""Python frames recorded with real BPF from every CPython 3.10-3.13 on this machine.

The workload (tests/fixtures/src/python_split.py) spends 2/3 of its time in a recursive
pure-Python function and 1/3 in the C regex engine, balanced by measured time.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import pytest

from bee_contract import codec
from bee_report.find.images import SymbolizeOptions
from bee_report.profile import FrameKind
from bee_report.symbolize import Symbolizer
from tests.conftest import SRC, run_bee

INTERPRETERS = sorted(
    p for p in ["/usr/bin/python3.11",
                *glob.glob("/root/.pyenv/versions/3.1[0-3].*/bin/python3.1[0-3]")]
    if os.access(p, os.X_OK))


@pytest.mark.bpf
@pytest.mark.parametrize("python", INTERPRETERS)
def test_python_frames_default(python: str, tmp_path: Path) -> None:
    # GIVEN a CPython running the 2:1 Python/regex workload under bee record (defaults)
    out = tmp_path / "py.bee"
    result = run_bee("record", "-q", "-F", "499", "-o", out, "--", python,
                     SRC / "python_split.py", "3")
    assert result.returncode == 0, result.stderr
    # WHEN it is symbolized
    rec = codec.read(out)
    main = [i for i, p in enumerate(rec.processes) if p.python is not None]
    assert main, "CPython was not detected"
    prof = Symbolizer(SymbolizeOptions()).profile([(str(out), rec)])
    ours = [s for s in prof.samples
            if s.comm == rec.processes[main[0]].comm and s.pid == rec.processes[main[0]].pid]
    total = sum(s.count for s in ours)
    with_py = sum(s.count for s in ours if any(f.kind is FrameKind.PYTHON for f in s.frames))
    # THEN >= 85 % of its samples have Python frames
    assert total > 100 and with_py / total >= 0.85, (with_py, total)  # CPU is shared

    def names(s: object) -> list[str]:
        return [f.name.split(" (")[0] for f in s.frames  # type: ignore[attr-defined]
                if f.kind is FrameKind.PYTHON]

    rec_n = sum(s.count for s in ours if "recurse" in names(s))
    re_n = sum(s.count for s in ours if "regex" in names(s))
    # the recursion is nested: 13 recurse frames under main, spin on top
    deep = [names(s) for s in ours if names(s).count("recurse") == 13]
    assert deep and deep[0][deep[0].index("main") + 1:][:13] == ["recurse"] * 13
    # the split matches the one the workload measured itself (2:1 by design), within noise
    said = re.search(r"python ([\d.]+) s regex ([\d.]+) s", result.stderr)
    assert said, result.stderr
    expected = float(said.group(1)) / float(said.group(2))
    assert 1.3 < expected < 2.2, expected
    assert abs(rec_n / max(re_n, 1) - expected) / expected < 0.25, (rec_n, re_n, expected)
    # the regex engine's native frames sit above (called by) the regex Python frame
    regex_stacks = [s for s in ours if names(s)[-1:] == ["regex"]]
    native_above = sum(s.count for s in regex_stacks
                       if any("sre" in f.name for f in s.frames[
                           [f.name.split(" (")[0] for f in s.frames].index("regex") + 1:]))
    assert native_above / max(re_n, 1) > 0.5, (native_above, re_n)
    # and with complete native stacks (the .eh_frame unwinder), the Python frames sit where
    # the interpreter's eval loop ran: below them the interpreter's entry, Py_RunMain
    def interleaved(s: object) -> bool:
        frames = s.frames  # type: ignore[attr-defined]
        first_py = next(i for i, f in enumerate(frames) if f.kind is FrameKind.PYTHON)
        return any(f.name == "Py_RunMain" for f in frames[:first_py])

    placed = sum(s.count for s in ours if names(s) and interleaved(s))
    assert placed / with_py > 0.5, (placed, with_py)


@pytest.mark.bpf
def test_no_python_records_native_only(tmp_path: Path) -> None:
    # GIVEN --no-python
    out = tmp_path / "n.bee"
    python = INTERPRETERS[0]
    result = run_bee("record", "-q", "--no-python", "-o", out, "--", python,
                     SRC / "python_split.py", "1")
    assert result.returncode == 0, result.stderr
    # THEN no Python stacks are in the file
    rec = codec.read(out)
    assert rec.python_stacks == () and all(p.python is None for p in rec.processes)


@pytest.mark.bpf
def test_short_lived_process_names_its_python_code(tmp_path: Path) -> None:
    # GIVEN a python3.11 process that lives about half a second, shorter than one drain
    out = tmp_path / "short.bee"
    result = run_bee("record", "-q", "-F", "499", "-o", out, "--", "/usr/bin/python3.11",
                     SRC / "python_short.py", "0.5")
    assert result.returncode == 0, result.stderr
    # WHEN it is symbolized
    rec = codec.read(out)
    pids = {p.pid for p in rec.processes if p.python is not None}
    prof = Symbolizer(SymbolizeOptions()).profile([(str(out), rec)])
    ours = [s for s in prof.samples if s.pid in pids]
    total = sum(s.count for s in ours)
    named = {n: sum(s.count for s in ours if any(
        f.kind is FrameKind.PYTHON and f.name.split(" (")[0] == n for f in s.frames))
        for n in ("alpha", "beta")}
    unknown = sum(s.count for s in ours if any(
        f.kind is FrameKind.PYTHON and f.name.startswith("[unknown") for f in s.frames))
    # THEN >= 85 % of its samples name their Python function (names were read while it lived)
    assert total > 50, total
    assert (named["alpha"] + named["beta"]) / total >= 0.85, (named, unknown, total)
    assert min(named.values()) > 0.25 * total, named


@pytest.mark.bpf
@pytest.mark.parametrize("mode", ["wall", "offcpu"])
def test_python_frames_off_cpu(mode: str, tmp_path: Path) -> None:
    # GIVEN python3.11 spinning in one function, then sleeping in another, under --mode
    out = tmp_path / "w.bee"
    result = run_bee("record", "-q", "--mode", mode, "-F", "199", "-o", out, "--",
                     "/usr/bin/python3.11", SRC / "python_sleepspin.py", "1.5")
    assert result.returncode == 0, result.stderr
    said = re.search(r"spinner ([\d.]+) s sleeper ([\d.]+) s", result.stderr)
    assert said, result.stderr
    # WHEN it is symbolized
    rec = codec.read(out)
    pids = {p.pid for p in rec.processes if p.python is not None}
    prof = Symbolizer(SymbolizeOptions()).profile([(str(out), rec)])

    def weight(name: str) -> int:
        return sum(s.weight for s in prof.samples if s.pid in pids and any(
            f.kind is FrameKind.PYTHON and f.name.split(" (")[0] == name for f in s.frames))

    spin, sleep = weight("spinner"), weight("sleeper")
    # THEN the sleeping function shows with its Python frames, weighted by the time blocked
    # (in nanoseconds), and in wall mode both in proportion to the time each phase took
    assert sleep > 0.7 * float(said.group(2)) * 1e9, (sleep, said.group(0))
    sleeping = [s for s in prof.samples if s.pid in pids and any(
        f.name.split(" (")[0] == "sleeper" for f in s.frames)]
    assert any("sleep" in f.name and f.kind is not FrameKind.PYTHON
               for s in sleeping for f in s.frames)  # the native frames it blocked in
    if mode == "wall":
        expected = float(said.group(2)) / float(said.group(1))
        assert abs(sleep / max(spin, 1) - expected) / expected < 0.25, (spin, sleep, expected)

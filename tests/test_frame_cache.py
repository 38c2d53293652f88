"""Saved frames (`bee_report.find.frame_cache`): a warm report answers from them, byte for byte
as a report without cache, and a damaged, foreign or hostile cache file never crashes or
misleads it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bee_contract import codec
from bee_contract.buildid import build_id_of_path
from bee_contract.recording import Binary, Mapping, Process, Sample
from bee_report import symbolize
from bee_report.find.frame_cache import FrameCache
from bee_report.find.images import SymbolizeOptions
from bee_report.report import build_profile
from bee_report.reporters.folded import render
from formats.make_sample import sample_recording

BASE = 0x555555554000


def _recording_of(binary: Path, tmp: Path) -> Path:
    """A recording of one process mapping `binary`, with a stack through its functions
    (every 5th byte from the first to the last) and an address no symbol covers."""
    nm = subprocess.run(["nm", "--defined-only", str(binary)], capture_output=True, text=True,
                        check=True).stdout
    funcs = sorted({int(f[0], 16) for f in (line.split() for line in nm.splitlines())
                    if len(f) == 3 and f[1] in "tT" and int(f[0], 16)})
    assert len(funcs) > 5
    stack = (*(BASE + a for a in range(funcs[0] + 1, funcs[-1], 5)), BASE + 0x10)
    proc = Process(pid=10, generation=0, ns_pid=10, ppid=1, comm="prog", exe=str(binary),
                   cmdline=None, maps=(Mapping(BASE, BASE + 0x1000000, 0, 0, 0, str(binary),
                                               0),))
    bid = build_id_of_path(str(binary))
    assert bid is not None
    rec = dataclasses.replace(
        sample_recording(), binaries=(Binary(str(binary), bid, 0),), processes=(proc,),
        stacks=(stack, stack[3:]),
        samples=(Sample(0, 10, 0, "prog", 0, -1, 5, 5), Sample(0, 10, 1, "prog", 1, -1, 2, 2)))
    out = tmp / "prog.bee"
    codec.write(rec, out)
    return out


def _folded(rec: Path, cache: Path | None) -> str:
    profile = build_profile((rec,), SymbolizeOptions(cache_dir=cache))
    return render(profile, lines=True)


def _no_tables(*args: Any) -> Any:
    raise AssertionError("symbol or DWARF tables opened")


@pytest.fixture()
def prog(build_c: Callable[..., Path]) -> Path:
    """A C++ binary with inlined functions, mangled names and DWARF."""
    return build_c("unwind_work.cc", name="prog", flags=("-O2",))


def test_warm_report_answers_from_saved_frames(prog: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a recording of a C++ binary, reported once with a cache folder
    rec = _recording_of(prog, tmp_path)
    cache = tmp_path / "cache"
    cold = _folded(rec, cache)
    saved = list((cache / "frames").iterdir())
    assert len(saved) == 1 and saved[0].name.endswith(".dwarf.v1.msgpack")
    assert oct(saved[0].stat().st_mode & 0o777) == "0o600"
    # WHEN it is reported again, with symbol and DWARF tables out of reach
    monkeypatch.setattr(symbolize, "load_tables", _no_tables)
    warm = _folded(rec, cache)
    # THEN the output is the one of a report without any cache, names, lines and inlines
    monkeypatch.undo()
    assert warm == cold == _folded(rec, None)
    assert "_[i]" in cold and "recurse(int, unsigned long)" in cold and ".cc:" in cold
    assert "prog+0x10" in cold


def _damage_shape(path: Path) -> None:
    data = msgpack.unpackb(path.read_bytes())
    data["entries"] = [[1, [["x", "not a bool", None, -1]]] for _ in data["entries"]]
    path.write_bytes(msgpack.packb(data))


def _damage_head(path: Path) -> None:
    data = msgpack.unpackb(path.read_bytes())
    data["source"] = "0" * 16  # an entry of other files
    data["entries"] = [["evil", []] for _ in data["entries"]]
    path.write_bytes(msgpack.packb(data))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbage": lambda p: p.write_bytes(os.urandom(300)),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "entry shapes": _damage_shape,
    "foreign head": _damage_head,
    "lengths differ": lambda p: p.write_bytes(msgpack.packb(
        {**msgpack.unpackb(p.read_bytes()), "addresses": []})),
    "huge": lambda p: os.truncate(p, 200 << 20),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_saved_frames_are_computed_again(prog: Path, tmp_path: Path, damage: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a filled cache whose saved frames file is then damaged
    rec = _recording_of(prog, tmp_path)
    cache = tmp_path / "cache"
    cold = _folded(rec, cache)
    (saved,) = (cache / "frames").iterdir()
    DAMAGE[damage](saved)
    # WHEN reported again THEN the output is unchanged (nothing of the damaged file shows)
    assert _folded(rec, cache) == cold
    # AND the file was written anew: the next report needs no tables
    monkeypatch.setattr(symbolize, "load_tables", _no_tables)
    assert _folded(rec, cache) == cold


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_saved_frames_that_are_not_files_are_left_alone(prog: Path, tmp_path: Path,
                                                        kind: str) -> None:
    # GIVEN a cache where the saved frames file is a link to another file, or a FIFO
    rec = _recording_of(prog, tmp_path)
    cache = tmp_path / "cache"
    cold = _folded(rec, cache)
    (saved,) = (cache / "frames").iterdir()
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not to be overwritten")
    saved.unlink()
    if kind == "symlink":
        saved.symlink_to(target)
    else:
        os.mkfifo(saved)
    # WHEN reported again THEN the output is unchanged, no read blocks, nothing is written
    # through the link or into the FIFO
    before = target.read_bytes()
    assert _folded(rec, cache) == cold
    assert saved.is_symlink() if kind == "symlink" else saved.is_fifo()
    assert target.read_bytes() == before


def test_saved_frames_never_answer_for_another_file(prog: Path, tmp_path: Path) -> None:
    # GIVEN frames saved from a binary, then a stripped copy (same build-id) in its place
    rec = _recording_of(prog, tmp_path)
    cache = tmp_path / "cache"
    full = _folded(rec, cache)
    stripped = tmp_path / "stripped"
    subprocess.run(["strip", "--strip-all", "-o", str(stripped), str(prog)], check=True)
    shutil.copyfile(stripped, prog)
    # WHEN reported with the same cache
    got = _folded(rec, cache)
    # THEN it names frames as the stripped file alone does, not from the saved frames
    assert got == _folded(rec, None) != full


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=5), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(addresses=st.lists(st.integers(0, 64), max_size=8), entries=st.lists(_values, max_size=8))
def test_any_saved_content_gives_none_or_well_formed_entries(
        tmp_path_factory: pytest.TempPathFactory, addresses: list[int],
        entries: list[Any]) -> None:
    # GIVEN a saved frames file with the right head and any addresses and entries
    cache = tmp_path_factory.mktemp("cache")
    bid, source = "ab" * 20, "0123456789abcdef"
    empty = FrameCache.open(cache, bid, source, True)
    assert empty is not None
    empty.path.parent.mkdir(parents=True)
    empty.path.write_bytes(msgpack.packb({"build_id": bid, "source": source, "dwarf": True,
                                          "addresses": addresses, "entries": entries}))
    # WHEN it is opened and every address looked up
    saved = FrameCache.open(cache, bid, source, True)
    assert saved is not None
    for a in range(65):
        got = saved.get(a)
        # THEN each answer is nothing or (symbol, ((function, inlined, file, line), ...))
        if got is not None:
            symbol, chain = got
            assert symbol is None or isinstance(symbol, str)
            for function, inlined, file, line in chain:
                assert function is None or isinstance(function, str)
                assert isinstance(inlined, bool) and (file is None or isinstance(file, str))
                assert line is None or (type(line) is int and line >= 0)
    saved.save()  # and writing it back never raises

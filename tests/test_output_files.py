"""Where bee writes: device nodes and links stay what they are, outputs never replace their
inputs, every file is private (0600), and temporaries of a killed run do not pile up.

Device nodes are made in tmp_path (a clone of /dev/null and /dev/full, as root) so that a
failure can never replace the host's own /dev/null.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bee_contract import codec
from bee_contract.atomic import STALE_AFTER_S, write_atomic
from bee_contract.errors import OutputError
from formats.make_sample import SAMPLE
from tests.conftest import REPO
from tests.test_report_cli import _recording_of


def char_device(path: Path, minor: int) -> Path:
    """A clone of /dev/null (minor 3) or /dev/full (minor 7) at `path`."""
    if os.geteuid() != 0:
        pytest.skip("making device nodes needs root")
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return path


def test_device_target_is_written_through_and_stays_a_device(tmp_path: Path) -> None:
    # GIVEN a /dev/null clone
    null = char_device(tmp_path / "null", 3)
    # WHEN a file is written to it
    write_atomic(null, b"recording")
    # THEN it is still the device, and no temporary file is left beside it
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_full_device_fails_with_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    full = char_device(tmp_path / "full", 7)
    with pytest.raises(OutputError) as exc:
        write_atomic(full, b"x" * 100_000)
    assert str(exc.value) == f"{full}: cannot write: No space left on device"
    assert stat.S_ISCHR(os.lstat(full).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_symlink_is_written_through_not_replaced(tmp_path: Path) -> None:
    # GIVEN out.svg -> real/out.svg (an existing file)
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "out.svg"
    target.write_bytes(b"old")
    link = tmp_path / "out.svg"
    link.symlink_to(target)
    # WHEN written THEN the link stays a link and its target holds the new data
    write_atomic(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_dangling_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "out.bee"
    link.symlink_to(tmp_path / "elsewhere" / "x")
    with pytest.raises(OutputError, match="dangling symbolic link"):
        write_atomic(link, b"x")
    assert not (tmp_path / "elsewhere").exists()


def test_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_atomic(fifo, b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_stdout_symlink_writes_to_stdout(tmp_path: Path) -> None:
    # GIVEN a link like /dev/stdout (made in tmp_path: a regression must not replace the
    # host's own) WHEN `bee report -o LINK` runs with stdout a pipe
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    rep = subprocess.run([sys.executable, "-m", "bee", "report", str(SAMPLE), "-f", "folded",
                          "-o", str(link)], cwd=REPO, capture_output=True, text=True)
    # THEN the folded stacks come out on stdout and the link is still a link
    assert rep.returncode == 0, rep.stderr
    assert rep.stdout.count("\n") > 3 and ";" in rep.stdout
    assert link.is_symlink()


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    # GIVEN temporaries left by a run killed long ago, one of a run still going, others' files
    old = time.time() - STALE_AFTER_S - 60
    stale = tmp_path / ".out.bee.k2j4h1x_.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (old, old))
    fresh = tmp_path / ".out.bee.abcdefgh.tmp"
    fresh.write_bytes(b"being written")
    other_name = tmp_path / ".bee-host-20260101-000000.bee.abcd1234.tmp"  # a default name
    other_name.write_bytes(b"half")
    os.utime(other_name, (old, old))
    unrelated = tmp_path / ".out.bee.notours.tmp"
    other_kind = tmp_path / ".out.svg.abcd1234.tmp"
    for path in (unrelated, other_kind):
        path.write_bytes(b"x")
        os.utime(path, (old, old))
    # WHEN the next run writes out.bee
    write_atomic(tmp_path / "out.bee", b"data")
    # THEN only the stale recordings are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fresh.name, unrelated.name, other_kind.name, "out.bee"])


def test_report_outputs_and_caches_are_private(tmp_path: Path,
                                               build_c: Callable[..., Path]) -> None:
    # GIVEN a report of a real program written to a file, with a symbol cache
    rec = _recording_of(build_c("chain.c", name="prog"), tmp_path)
    out = tmp_path / "x.svg"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    rep = subprocess.run([sys.executable, "-m", "bee", "report", str(rec), "-f", "svg",
                          "-o", str(out), "--renderer", "builtin", "--lines"],
                         cwd=REPO, capture_output=True, text=True, env=env)
    assert rep.returncode == 0, rep.stderr
    # THEN the output and every cached file are 0600
    files = [out, *(p for p in (tmp_path / "cache").rglob("*") if p.is_file())]
    assert len(files) > 1, "the report fills the cache"
    assert {str(p): stat.S_IMODE(p.stat().st_mode) for p in files} == {
        str(p): 0o600 for p in files}


@pytest.mark.parametrize("command", ["report", "diff"])
def test_output_over_an_input_is_refused(command: str, tmp_path: Path,
                                         cli: Callable[..., Any]) -> None:
    # GIVEN a recording WHEN a report (or a diff) is asked to overwrite it (via a hard link)
    rec = tmp_path / "v.bee"
    shutil.copy(SAMPLE, rec)
    os.link(rec, tmp_path / "alias.bee")
    before = rec.read_bytes()
    args = [command, rec, *([rec] if command == "diff" else []), "-f", "svg",
            "-o", tmp_path / "alias.bee", "--renderer", "builtin"]
    result = cli(*args)
    # THEN it is refused in one line and the recording is untouched
    assert result.exit_code == 1
    assert result.stderr == f"bee: {tmp_path / 'alias.bee'}: is the input {rec}; " \
        "refusing to overwrite it\n"
    assert rec.read_bytes() == before and codec.read(rec).samples

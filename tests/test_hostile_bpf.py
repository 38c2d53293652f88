"""`bee record` (root, real BPF) against a hostile unprivileged process and a reduced root.

These load BPF programs and need root; see conftest.py for how they are gated.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bee_contract import codec
from tests.conftest import REPO

pytestmark = [pytest.mark.bpf]

# Runs as nobody: a FIFO at its perf map, then a loop in anonymous executable memory (so
# its samples need the perf map: the recorder opens the FIFO).
_JIT_LOOP = """
import ctypes, mmap, os
os.mkfifo(f"/tmp/perf-{os.getpid()}.map")
buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(b"\\xeb\\xfe")  # jmp .
print("ready", flush=True)
ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))()
"""


@pytest.fixture()
def fifo_jit() -> Iterator[int]:
    """A process owned by nobody, spinning in anonymous code, its perf map a FIFO."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run a process as nobody")
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             "/usr/bin/python3", "-c", _JIT_LOOP],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/tmp/perf-{proc.pid}.map")


def test_fifo_perf_map_does_not_hang_the_recorder(fifo_jit: int, tmp_path: Path) -> None:
    # GIVEN a process owned by nobody whose /tmp/perf-PID.map is a FIFO
    assert Path(f"/tmp/perf-{fifo_jit}.map").is_fifo()
    out = tmp_path / "jit.bee"
    # WHEN root records it for 2 s
    rec = subprocess.run([sys.executable, "-m", "bee", "record", "-p", str(fifo_jit),
                          "-d", "2", "-o", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=90)
    # THEN the recording finishes and holds the samples, with no JIT names
    assert rec.returncode == 0, rec.stderr
    got = codec.read(out)
    assert got.total_samples > 0
    assert all(not p.jit for p in got.processes)


def test_root_without_bpf_capabilities_is_told_what_is_missing(tmp_path: Path) -> None:
    # GIVEN root whose bounding set lacks CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to drop capabilities")
    out = tmp_path / "x.bee"
    # WHEN it records
    rec = subprocess.run(["setpriv", "--inh-caps=-all",
                          "--bounding-set=-bpf,-perfmon,-sys_admin",
                          sys.executable, "-m", "bee", "record", "-d", "1", "-o", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    # THEN one line names what is missing, before any BPF is loaded, and no file is written
    assert rec.returncode == 1
    assert rec.stderr == (
        "bee: bee record needs the capabilities CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN "
        "(missing: CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN); this root process lacks them "
        "(container or capability bounding set?)\n")
    assert not out.exists()


def test_duration_is_kept_at_the_highest_frequency(tmp_path: Path) -> None:
    # GIVEN the highest frequency the kernel allows, for 1 s
    out = tmp_path / "fast.bee"
    rec = subprocess.run([sys.executable, "-m", "bee", "record", "-F", "100000", "-d", "1",
                          "-o", str(out)], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert rec.returncode == 0, rec.stderr
    # THEN sampling stopped near the deadline (a capture in progress finishes first), not
    # after drains and captures under full load (which took tens of seconds)
    assert codec.read(out).header.duration_ns < 10_000_000_000


def test_record_to_a_full_device_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    # GIVEN a clone of /dev/full (made here: a regression must not replace the host's own)
    full = tmp_path / "full"
    os.mknod(full, 0o20666, os.makedev(1, 7))
    # WHEN a recording is written to it
    rec = subprocess.run([sys.executable, "-m", "bee", "record", "-d", "1", "-o", str(full)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    # THEN one error line, the device is still a device, and no temporary file is left
    assert rec.returncode == 1
    assert rec.stderr.splitlines()[-1] == f"bee: {full}: cannot write: No space left on device"
    assert Path(full).is_char_device()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]

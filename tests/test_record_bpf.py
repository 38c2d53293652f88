"""`bee record` on real BPF, then `bee report` offline: the foundation's end-to-end tests.

These load BPF programs and need root; see conftest.py for how they are gated.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bee_contract import codec
from tests.conftest import REPO, run_bee

pytestmark = [pytest.mark.bpf]


def folded_lines(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        out[stack] = out.get(stack, 0) + int(count)
    return out


def share(folded: dict[str, int], needle: str) -> float:
    total = sum(folded.values())
    return sum(v for k, v in folded.items() if needle in k) / total if total else 0.0


@pytest.fixture()
def chain(build_c: Callable[..., Path]) -> Path:
    return build_c("chain.c")


def test_command_mode_resolves_from_a_renamed_copy_after_the_original_is_deleted(
    chain: Path, tmp_path: Path
) -> None:
    # GIVEN a frame-pointer binary with a known call chain, copied under another name
    symbols = tmp_path / "symbols"
    symbols.mkdir()
    shutil.copy(chain, symbols / "renamed-copy")
    out = tmp_path / "chain.bee"
    # WHEN it is recorded through `--` at 499 Hz for 2 s
    rec = run_bee("record", "-F", "499", "-o", out, "--", chain, "2")
    assert rec.returncode == 0, rec.stderr
    summary = re.search(r"Wrote (\S+) \((\d+) samples, (\d+) processes, (\d+) lost\)",
                        rec.stderr)
    assert summary is not None, rec.stderr
    assert summary.group(1) == str(out) and summary.group(3) == "1"
    assert int(summary.group(4)) <= int(summary.group(2)) // 100  # a rare lost stack at most
    chain.unlink()
    # AND reported with only the copy available
    rep = run_bee("report", out, "--symbols", symbols, "--format", "folded")
    assert rep.returncode == 0, rep.stderr
    folded = folded_lines(rep.stdout)
    # THEN the chain is named root first and the shares match the workload (3:1)
    inner = share(folded, "main;bee_outer;bee_middle;bee_inner")
    side = share(folded, "main;bee_outer;bee_side")
    assert 0.60 < inner < 0.90, rep.stdout
    assert 0.10 < side < 0.40, rep.stdout
    assert all(k.startswith("chain;") for k in folded)
    assert sum(folded.values()) > 150  # ~1000 on an idle machine; fewer under load
    assert out.stat().st_mode & 0o777 == 0o600


def test_command_exit_code_is_returned(tmp_path: Path) -> None:
    rec = run_bee("record", "-q", "-o", tmp_path / "x.bee", "--", "sh", "-c", "exit 3")
    assert rec.returncode == 3
    assert codec.read(tmp_path / "x.bee").header.target.startswith("command sh")


def test_pid_mode_records_only_that_process(chain: Path, tmp_path: Path) -> None:
    # GIVEN a running process
    proc = subprocess.Popen([chain, "60"])
    try:
        out = tmp_path / "pid.bee"
        # WHEN recorded by pid for 1.5 s
        rec = run_bee("record", "-p", proc.pid, "-F", "199", "-d", "1.5", "-o", out)
        assert rec.returncode == 0, rec.stderr
    finally:
        proc.kill()
        proc.wait()
    recording = codec.read(out)
    # THEN every sample belongs to that pid and the chain is there
    assert {recording.processes[s.process].pid for s in recording.samples} == {proc.pid}
    assert recording.total_samples > 50  # ~300 on an idle machine
    rep = run_bee("report", out, "-f", "folded")
    assert share(folded_lines(rep.stdout), "main;bee_outer;bee_middle;bee_inner") > 0.5


def test_system_wide_names_kernel_frames(tmp_path: Path) -> None:
    # GIVEN a syscall-heavy process running beside the recording
    busy = subprocess.Popen(["dd", "if=/dev/zero", "of=/dev/null", "bs=512", "count=100000000"])
    try:
        out = tmp_path / "sys.bee"
        # WHEN the whole system is recorded
        rec = run_bee("record", "-F", "199", "-d", "2", "-o", out)
        assert rec.returncode == 0, rec.stderr
    finally:
        busy.kill()
        busy.wait()
    recording = codec.read(out)
    assert recording.header.target == "system"
    assert recording.kernel.symbols, "kallsyms entries for sampled kernel addresses"
    rep = run_bee("report", out, "-f", "folded")
    assert rep.returncode == 0, rep.stderr
    dd = {k: v for k, v in folded_lines(rep.stdout).items() if k.startswith("dd;")}
    kernel_frames = {f for k in dd for f in k.split(";") if f.endswith("_[k]")}
    # THEN dd's stacks end in named kernel frames (e.g. read/write paths)
    named = {f for f in kernel_frames if not f.startswith("[unknown]")}
    assert len(named) >= 3, sorted(kernel_frames)
    assert any("sys_" in f or "syscall" in f for f in named), sorted(named)


def test_build_id_mismatch_is_never_used(chain: Path, build_c: Callable[..., Path],
                                         tmp_path: Path) -> None:
    # GIVEN a recording, then a different build placed where the original was
    out = tmp_path / "m.bee"
    assert run_bee("record", "-q", "-o", out, "--", chain, "1").returncode == 0
    other = build_c("chain.c", name="other", flags=("-DVARIANT=2", "-O2"))
    symbols = tmp_path / "sym"
    symbols.mkdir()
    shutil.copy(other, symbols / "chain")
    os.replace(other, chain)
    # WHEN reported
    rep = run_bee("report", out, "--symbols", symbols, "-f", "folded")
    # THEN a warning names the mismatch and no frame is named from the wrong binary
    assert rep.returncode == 0
    assert "different build-id" in rep.stderr
    assert "bee_inner" not in rep.stdout
    assert "chain+0x" in rep.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_stops_with_a_complete_file(tmp_path: Path, sig: int) -> None:
    out = tmp_path / "s.bee"
    proc = subprocess.Popen([sys.executable, "-m", "bee", "record", "-o", str(out)],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "Recording" in line, line
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Wrote" in err
    assert codec.read(out).header.duration_ns > 0


def test_missing_pid_is_one_line(tmp_path: Path) -> None:
    rec = run_bee("record", "-p", "999999999", "-o", tmp_path / "x.bee")
    assert rec.returncode != 0
    assert rec.stderr.strip() == "bee: no process with pid 999999999"


def test_without_privileges_says_what_is_missing() -> None:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to drop privileges")
    # a folder the unprivileged user can write to (pytest's own tmp tree is root-only)
    tmp_path = Path(tempfile.mkdtemp(prefix="bee-nobody-"))
    tmp_path.chmod(0o777)
    rec = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "--inh-caps=-all", sys.executable, "-m", "bee", "record", "-d", "1",
         "-o", str(tmp_path / "x.bee")],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "HOME": str(tmp_path)},
    )
    assert rec.returncode != 0
    lines = rec.stderr.strip().splitlines()
    assert len(lines) == 1, rec.stderr
    assert "CAP_BPF" in lines[0] and "CAP_PERFMON" in lines[0]
    assert not (tmp_path / "x.bee").exists()
    shutil.rmtree(tmp_path)


def test_unwritable_output_fails_before_loading_bpf(tmp_path: Path) -> None:
    rec = run_bee("record", "-o", tmp_path / "missing" / "x.bee", "-d", "1")
    assert rec.returncode != 0
    assert rec.stderr.strip().endswith("does not exist")
    assert "Recording" not in rec.stderr


def test_second_ctrl_c_during_the_write_keeps_the_file(tmp_path: Path) -> None:
    out = tmp_path / "twice.bee"
    proc = subprocess.Popen([sys.executable, "-m", "bee", "record", "-o", str(out), "--",
                             "sh", "-c", "while :; do :; done"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert "Recording" in proc.stderr.readline()
    time.sleep(1.2)
    proc.send_signal(signal.SIGINT)
    for _ in range(5):  # keep pressing Ctrl-C while it drains and writes
        time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # the command's status: it got the SIGINT too
    assert codec.read(out).total_samples > 0


def test_pid_that_exits_mid_recording_keeps_its_samples(chain: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([chain, "60"])
    out = tmp_path / "gone.bee"
    rec_proc = subprocess.Popen(
        [sys.executable, "-m", "bee", "record", "-p", str(proc.pid), "-F", "199", "-d", "30",
         "-o", str(out)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert rec_proc.stderr is not None
    assert "Recording" in rec_proc.stderr.readline()
    time.sleep(1.0)
    proc.kill()
    proc.wait()
    # THEN the recording ends by itself (long before -d 30) with the samples taken
    _, err = rec_proc.communicate(timeout=20)
    assert rec_proc.returncode == 0, err
    recording = codec.read(out)
    assert recording.total_samples > 30  # ~200 on an idle machine
    assert recording.header.duration_ns < 10e9


def test_disk_full_during_the_write_leaves_no_file(tmp_path: Path) -> None:
    # GIVEN an output folder on a 2 MiB tmpfs that fills up while recording
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "none", str(mnt)], check=True)
    try:
        out = mnt / "full.bee"
        proc = subprocess.Popen([sys.executable, "-m", "bee", "record", "-o", str(out)],
                                cwd=REPO, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        assert "Recording" in proc.stderr.readline()
        with open(mnt / "filler", "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        # THEN one clear line, a non-zero exit, and nothing left but the filler
        assert proc.returncode != 0
        assert err.strip().splitlines()[-1].startswith(f"bee: {out}: cannot write: No space")
        assert sorted(p.name for p in mnt.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_is_refused_before_loading_bpf(tmp_path: Path) -> None:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "none", str(mnt)], check=True)
    try:
        rec = run_bee("record", "-d", "1", "-o", mnt / "x.bee")
        assert rec.returncode != 0
        assert rec.stderr.strip() == f"bee: {mnt / 'x.bee'}: no space left in {mnt}"
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_archive_then_report_elsewhere(chain: Path, tmp_path: Path) -> None:
    # GIVEN a recording and its archive made on the target
    out = tmp_path / "a.bee"
    assert run_bee("record", "-q", "-F", "199", "-o", out, "--", chain, "1").returncode == 0
    arc = run_bee("archive", out, "-o", tmp_path / "a.tar.gz")
    assert arc.returncode == 0, arc.stderr
    # chain and libc at least (a sample in ld.so while the process starts adds it)
    m = re.match(rf"Wrote {re.escape(str(tmp_path / 'a.tar.gz'))} \((\d+) binaries", arc.stderr)
    assert m is not None and int(m.group(1)) >= 2, arc.stderr
    # WHEN the binary is gone and the report gets only the archive
    chain.unlink()
    rep = run_bee("report", out, "--symbols", tmp_path / "a.tar.gz", "-f", "folded",
                  env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    # THEN the chain is named, libc frames too
    assert rep.returncode == 0, rep.stderr
    assert share(folded_lines(rep.stdout), "__libc_start_call_main;main;bee_outer") > 0.9


def test_thread_id_given_to_pid_records_its_process(tmp_path: Path) -> None:
    # GIVEN a process whose second thread spins, and that thread's id (not the pid)
    code = ("import threading, time, sys\n"
            "def spin():\n    end = time.time() + 30\n    while time.time() < end: pass\n"
            "t = threading.Thread(target=spin); t.start()\n"
            "print(t.native_id, flush=True); t.join()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        tid = int(proc.stdout.readline())
        assert tid != proc.pid
        out = tmp_path / "tid.bee"
        rec = run_bee("record", "-p", tid, "-F", "199", "-d", "1", "-o", out)
        assert rec.returncode == 0, rec.stderr
    finally:
        proc.kill()
        proc.wait()
    # THEN the process is recorded (all its threads), under its pid
    recording = codec.read(out)
    assert recording.header.target == f"pid {proc.pid}"
    assert {recording.processes[s.process].pid for s in recording.samples} == {proc.pid}
    assert tid in {s.tid for s in recording.samples}

"""What production recording needs, on real BPF: off-CPU and wall time, event probes,
per-CPU/thread views, JIT maps (also inside pid and mount namespaces), rotation,
process churn, exec, deleted binaries and cgroups."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bee_contract import codec
from bee_record.record import cgroup2_root
from tests.conftest import SRC, run_bee
from tests.test_record_bpf import folded_lines, share

pytestmark = [pytest.mark.bpf]


def weights(folded: dict[str, int], needle: str) -> int:
    return sum(v for k, v in folded.items() if needle in k)


def test_offcpu_time_is_attributed_to_the_blocking_stack(tmp_path: Path) -> None:
    # GIVEN a process that sleeps 20 x 50 ms
    out = tmp_path / "off.bee"
    code = "import time\nfor _ in range(20): time.sleep(0.05)"
    # WHEN recorded off-CPU
    rec = run_bee("record", "--mode", "offcpu", "-o", out, "--", sys.executable, "-c", code)
    assert rec.returncode == 0, rec.stderr
    recording = codec.read(out)
    assert recording.header.weight_unit == "nanoseconds"
    comm = Path(sys.executable).name[:15]
    rep = run_bee("report", out, "-f", "folded", "--comm", comm)
    folded = folded_lines(rep.stdout)
    # THEN about one second is spent in the sleep syscall
    slept = weights(folded, "sys_clock_nanosleep") or weights(folded, "nanosleep")
    assert 0.9e9 < slept < 1.5e9, rep.stdout
    top = run_bee("report", out, "-f", "top", "--comm", comm).stdout
    assert "total" in top.splitlines()[0] and "s " in top


def test_wall_mode_adds_up_to_wall_time(build_c: Callable[..., Path], tmp_path: Path) -> None:
    # GIVEN a single-threaded program half spinning and half sleeping for 1.5 s
    prog = build_c("spinsleep.c")
    out = tmp_path / "wall.bee"
    rec = run_bee("record", "--mode", "wall", "-F", "199", "-o", out, "--", prog, "1.5")
    assert rec.returncode == 0, rec.stderr
    rep = run_bee("report", out, "-f", "folded")
    folded = folded_lines(rep.stdout)
    mine = {k: v for k, v in folded.items() if k.startswith("spinsleep;")}
    total = sum(mine.values())
    # THEN its stacks add up to its wall time, split between spinning and napping (libc
    # has no frame pointers, so bee_nap itself is hidden behind its nanosleep call)
    assert 1.3e9 < total < 1.8e9, total
    spin, nap = weights(mine, "bee_spin"), weights(mine, "nanosleep")
    assert 0.3 < spin / total < 0.7 and 0.3 < nap / total < 0.7, (spin, nap, total)
    # AND its clock_gettime calls are named inside the vDSO image carried by the recording
    assert codec.read(out).kernel.vdso[:4] == b"\x7fELF"
    assert weights(mine, ";clock_gettime") > 0 and weights(mine, "[vdso]+0x") == 0


def test_per_cpu_and_per_thread_roots(build_c: Callable[..., Path], tmp_path: Path) -> None:
    chain = build_c("chain.c")
    out = tmp_path / "c.bee"
    assert run_bee("record", "-q", "-F", "199", "-o", out, "--", chain, "1").returncode == 0
    per_cpu = folded_lines(run_bee("report", out, "-f", "folded", "--per-cpu").stdout)
    cpus = {s.cpu for s in codec.read(out).samples}
    assert {k.split(";")[0] for k in per_cpu} == {f"cpu_{c}" for c in cpus}
    per_thread = folded_lines(run_bee("report", out, "-f", "folded", "--per-thread").stdout)
    assert all(k.split(";")[0].startswith("tid_") and ";chain;" in k for k in per_thread)


def test_tracepoint_counts_every_hit(tmp_path: Path) -> None:
    # GIVEN dd doing exactly 3000 one-byte writes
    out = tmp_path / "tp.bee"
    rec = run_bee("record", "-e", "tracepoint:syscalls:sys_enter_write", "-o", out, "--",
                  "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=3000")
    assert rec.returncode == 0, rec.stderr
    recording = codec.read(out)
    # THEN every write is a counted stack (dd adds a few writes of its statistics)
    assert recording.header.mode == "event" and recording.header.weight_unit == "events"
    assert 3000 <= recording.total_samples <= 3010
    folded = folded_lines(run_bee("report", out, "-f", "folded").stdout)
    assert all(k.startswith("tracepoint:syscalls:sys_enter_write;dd;") for k in folded)


def test_uprobe_counts_calls(build_c: Callable[..., Path], tmp_path: Path) -> None:
    prog = build_c("calls.c")
    out = tmp_path / "up.bee"
    rec = run_bee("record", "-e", f"uprobe:{prog}:bee_target", "-e",
                  f"uretprobe:{prog}:bee_target", "-o", out, "--", prog, "1234")
    assert rec.returncode == 0, rec.stderr
    recording = codec.read(out)
    per_event: dict[int, int] = {}
    for s in recording.samples:
        per_event[s.event] = per_event.get(s.event, 0) + s.count
    assert per_event == {2: 1234, 3: 1234}
    folded = folded_lines(run_bee("report", out, "-f", "folded").stdout)
    assert weights(folded, ";main;bee_target") == 1234  # entry: leaf is bee_target


def test_kprobe_without_kernel_support_is_one_line(tmp_path: Path) -> None:
    if any(os.path.exists(f"{t}/kprobe_events")
           for t in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")):
        pytest.skip("this kernel has kprobes; the no-kprobes message cannot be shown")
    rec = run_bee("record", "-e", "kprobe:do_sys_open", "-d", "1", "-o", tmp_path / "k.bee")
    assert rec.returncode != 0
    assert rec.stderr.count("\n") == 1 and "no kprobes" in rec.stderr


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the JIT test (installed by scripts/setup.sh)")
    return node


def test_jit_frames_from_node_perf_map(tmp_path: Path) -> None:
    out = tmp_path / "jit.bee"
    rec = run_bee("record", "-F", "199", "-o", out, "--", _node(), "--perf-basic-prof",
                  SRC / "jit.js", "1.5", cwd=tmp_path)
    assert rec.returncode == 0, rec.stderr
    recording = codec.read(out)
    assert any("beeHotFunction" in j.name for p in recording.processes for j in p.jit)
    folded = folded_lines(run_bee("report", out, "-f", "folded").stdout)
    assert share(folded, "beeHotFunction") > 0.3
    assert any(f.endswith("_[j]") and "beeHotFunction" in f for k in folded for f in k.split(";"))


def test_jit_inside_pid_and_mount_namespaces(tmp_path: Path) -> None:
    # GIVEN node in its own pid and mount namespace, its /tmp private (like a container)
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is required")
    # the JavaScript goes inline: a private /tmp hides files under /tmp (where a checkout
    # may live)
    code = shlex.quote((SRC / "jit.js").read_text())
    script = f"mount -t tmpfs none /tmp && exec {_node()} --perf-basic-prof -e {code} 1.5"
    out = tmp_path / "ns.bee"
    rec = run_bee("record", "-F", "199", "-o", out, "--", "unshare", "--pid", "--fork",
                  "--mount", "--mount-proc", "sh", "-c", script, cwd=tmp_path)
    assert rec.returncode == 0, rec.stderr
    recording = codec.read(out)
    node = [p for p in recording.processes if p.comm == "node"]
    # THEN the namespace pid differs from the host pid and the perf map was read inside
    assert node and node[0].ns_pid != node[0].pid
    assert any("beeHotFunction" in j.name for p in node for j in p.jit)


def test_rotation_writes_standalone_files_that_merge(
    build_c: Callable[..., Path], tmp_path: Path
) -> None:
    # GIVEN a workload whose CPU time is measured by its parent (a small python wrapper)
    chain = build_c("chain.c")
    cpu_file = tmp_path / "cpu"
    wrapper = ("import resource, subprocess, sys\n"
               f"subprocess.run([{str(chain)!r}, '3.2'])\n"
               "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               f"open({str(cpu_file)!r}, 'w').write(str(r.ru_utime + r.ru_stime))")
    out = tmp_path / "rot.bee"
    # WHEN recorded in a series of one-second files
    rec = run_bee("record", "-F", "199", "--rotate", "1", "-o", out, "--",
                  sys.executable, "-c", wrapper)
    assert rec.returncode == 0, rec.stderr
    files = sorted(tmp_path.glob("rot.*.bee"))
    assert len(files) >= 3, files
    recs = [codec.read(f) for f in files]
    assert [r.header.sequence for r in recs] == list(range(1, len(files) + 1))
    # THEN each file stands alone: its own processes, binaries and names
    for f in files[:-1]:
        alone = folded_lines(run_bee("report", f, "-f", "folded", "--comm", "chain").stdout)
        assert share(alone, "main;bee_outer;bee_middle;bee_inner") > 0.5
    # AND together they hold the workload's CPU time once: nothing lost or counted twice
    chain_samples = sum(s.count for r in recs for s in r.samples
                        if r.processes[s.process].comm == "chain")
    expected = float(cpu_file.read_text()) * 199
    assert 0.9 * expected < chain_samples < 1.1 * expected, (chain_samples, expected)
    merged = folded_lines(run_bee("report", *files, "-f", "folded").stdout)
    assert sum(merged.values()) == sum(r.total_samples for r in recs)


def test_hundreds_of_short_lived_processes_resolve(
    build_c: Callable[..., Path], tmp_path: Path
) -> None:
    # GIVEN 150 processes that each live about 30 ms
    chain = build_c("chain.c")
    loop = f"for i in $(seq 150); do {chain} 0.03; done"
    out = tmp_path / "churn.bee"
    rec = run_bee("record", "-F", "499", "-o", out, "--", "sh", "-c", loop)
    assert rec.returncode == 0, rec.stderr
    recording = codec.read(out)
    chains = {p.pid for p in recording.processes if p.comm == "chain"}
    assert len(chains) > 50  # ~150 on an idle machine
    folded = folded_lines(run_bee("report", out, "-f", "folded", "--comm", "chain").stdout)
    # THEN nearly all of their user frames are named (main program, libc and ld.so alike)
    user = {k: v for k, v in folded.items() if not k.split(";")[1].endswith("_[k]")}
    unresolved = {k: v for k, v in user.items()
                  if any("+0x" in f or f == "[unknown]" for f in k.split(";")[1:])}
    assert sum(unresolved.values()) / sum(user.values()) < 0.05, unresolved
    assert weights(folded, "bee_inner") + weights(folded, "bee_side") > 0.5 * sum(user.values())


def test_exec_gets_a_new_generation_with_its_own_maps(
    build_c: Callable[..., Path], tmp_path: Path
) -> None:
    chain = build_c("chain.c")
    code = ("import os, time\nend = time.time() + 0.5\nwhile time.time() < end: pass\n"
            f"os.execv({str(chain)!r}, ['chain', '1'])")
    out = tmp_path / "exec.bee"
    rec = run_bee("record", "-F", "199", "-o", out, "--", sys.executable, "-c", code)
    assert rec.returncode == 0, rec.stderr
    recording = codec.read(out)
    gens = {(p.pid, p.generation): p.comm for p in recording.processes}
    pids = {pid for pid, _ in gens}
    assert len(pids) == 1 and "chain" in gens.values() and len(gens) >= 2, gens
    folded = folded_lines(run_bee("report", out, "-f", "folded").stdout)
    assert share(folded, ";__libc_start_call_main;main;bee_outer") > 0.4


def test_deleted_binary_resolves_through_map_files(
    build_c: Callable[..., Path], tmp_path: Path
) -> None:
    # GIVEN a running process whose binary is deleted (a copy kept for the report)
    chain = build_c("chain.c")
    keep = tmp_path / "keep"
    keep.mkdir()
    shutil.copy(chain, keep / "chain-copy")
    proc = subprocess.Popen([chain, "30"])
    try:
        time.sleep(0.2)
        chain.unlink()
        out = tmp_path / "del.bee"
        rec = run_bee("record", "-p", proc.pid, "-F", "199", "-d", "1", "-o", out)
        assert rec.returncode == 0, rec.stderr
    finally:
        proc.kill()
        proc.wait()
    recording = codec.read(out)
    binary = next(b for b in recording.binaries if b.path == str(chain))
    assert binary.build_id is not None  # read through /proc/PID/map_files
    folded = folded_lines(run_bee("report", out, "--symbols", keep, "-f", "folded").stdout)
    assert share(folded, "main;bee_outer;bee_middle;bee_inner") > 0.5


def test_cgroup_limits_recording(build_c: Callable[..., Path], tmp_path: Path) -> None:
    root = cgroup2_root()
    chain = build_c("chain.c")
    group = root / f"bee-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    inside = subprocess.Popen([chain, "30"])
    outside = subprocess.Popen([chain, "30"])
    try:
        (group / "cgroup.procs").write_text(str(inside.pid))
        out = tmp_path / "cg.bee"
        rec = run_bee("record", "--cgroup", group, "-F", "199", "-d", "1", "-o", out)
        assert rec.returncode == 0, rec.stderr
        pids = {codec.read(out).processes[s.process].pid for s in codec.read(out).samples}
        assert pids == {inside.pid}
    finally:
        for p in (inside, outside):
            p.kill()
            p.wait()
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def test_no_cmdline_omits_command_lines(tmp_path: Path) -> None:
    out = tmp_path / "n.bee"
    secret = "--password=hunter2"
    code = "import time\nend = time.time() + 0.3\nwhile time.time() < end: pass"
    rec = run_bee("record", "--no-cmdline", "-o", out, "--", sys.executable, "-c", code, secret)
    assert rec.returncode == 0, rec.stderr
    recording = codec.read(out)
    assert recording.processes and all(p.cmdline is None for p in recording.processes)
    assert b"hunter2" not in codec.encode(recording, compress=False)


def test_min_block_drops_shorter_blocks(tmp_path: Path) -> None:
    # GIVEN 10 sleeps of 20 ms and 2 of 300 ms
    code = ("import time\nfor _ in range(10): time.sleep(0.02)\n"
            "for _ in range(2): time.sleep(0.3)")
    out = tmp_path / "mb.bee"
    # WHEN only blocks of at least 100 ms are kept
    rec = run_bee("record", "--mode", "offcpu", "--min-block", "100000", "-o", out, "--",
                  sys.executable, "-c", code)
    assert rec.returncode == 0, rec.stderr
    comm = Path(sys.executable).name[:15]
    mine = [s for s in codec.read(out).samples if s.comm == comm]
    # THEN the two long sleeps remain, each weighing its own duration
    assert sum(s.count for s in mine) == 2
    assert 0.55e9 < sum(s.weight for s in mine) < 0.8e9

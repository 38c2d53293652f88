"""Shared helpers of the benchmark suite: processes, CPU accounting, statistics, tables.

Standard library only. Every child is started with a fixed argument list in its own
session, so that a failure can end its whole group (by its id) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_PY = ROOT / ".venv" / "bin" / "python"
BEE = ROOT / ".venv" / "bin" / "bee"
HELPER = BENCH / "bee_helper.py"
HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def track(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Remember a child until it is reaped, so :func:`end_children` can end it."""
    _LIVE[proc.pid] = proc
    return proc


def end_children(grace: float = 3.0) -> None:
    """End every tracked child still running (each by its own process group id)."""
    for proc in list(_LIVE.values()):
        if proc.returncode is None:
            print(f"bench: ending leftover child {proc.pid} ({_cmd(proc.args)})",  # type: ignore[arg-type]
                  file=sys.stderr)
            kill_group(proc, grace)
    _LIVE.clear()


class BenchError(Exception):
    """A measurement could not be made; the section reports it instead of a number."""


@dataclass
class Timed:
    """Result of :func:`run_timed`."""

    wall: float
    cpu: float  # user + system of the child and its waited-for descendants
    stdout: str
    stderr: str
    returncode: int


def run_timed(
    argv: Sequence[str | os.PathLike[str]],
    *,
    stdin: str | None = None,
    stdout_path: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
    check: bool = True,
) -> Timed:
    """Run ``argv`` to completion; wall time from fork to reap, CPU from ``wait4``.

    Standard output goes to ``stdout_path`` when given (so that the write cost is part of
    the measurement, as with a tool's ``-o``), else it is captured.
    """
    out_f = open(stdout_path, "wb") if stdout_path else None  # noqa: SIM115
    try:
        t0 = time.monotonic()
        proc = track(subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out_f if out_f else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        ))
        chunks: dict[str, bytes] = {}
        threads = [_pump(proc.stderr, chunks, "err")]
        if proc.stdout is not None:
            threads.append(_pump(proc.stdout, chunks, "out"))
        if proc.stdin is not None:
            threads.append(_feed(proc.stdin, (stdin or "").encode()))
        cpu = reap(proc, timeout)
        wall = time.monotonic() - t0
        if cpu is None:
            raise BenchError(f"timed out after {timeout:.0f} s: {_cmd(argv)}")
        for t in threads:
            t.join(10)
    finally:
        if out_f:
            out_f.close()
    res = Timed(wall, cpu, chunks.get("out", b"").decode("utf-8", "replace"),
                chunks.get("err", b"").decode("utf-8", "replace"), proc.returncode or 0)
    if check and res.returncode != 0:
        raise BenchError(f"exit {res.returncode}: {_cmd(argv)}: {_tail(res.stderr)}")
    return res


def import_times(argv: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None,
                 stdin: str | None = None) -> list[tuple[str, float]]:
    """Modules a bee command imports itself (``python -X importtime``; top level, cumulative
    seconds), largest first. ``argv[0]`` is a console script of the venv."""
    res = run_timed([str(VENV_PY), "-X", "importtime", *map(str, argv)], env=env, stdin=stdin,
                    check=False)
    rows = []
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)", line)
        if m:  # exactly one space after the bar: imported by the program, not nested
            rows.append((m.group(2), int(m.group(1)) / 1e6))
    return sorted(rows, key=lambda r: -r[1])


def _pump(pipe: IO[bytes] | None, into: dict[str, bytes], key: str) -> threading.Thread:
    def run() -> None:
        if pipe is not None:
            into[key] = pipe.read()
            pipe.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _feed(pipe: IO[bytes], data: bytes) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.write(data)
        with contextlib.suppress(OSError):
            pipe.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def reap(proc: subprocess.Popen[bytes], timeout: float) -> float | None:
    """Wait up to ``timeout`` s for ``proc`` and reap it with ``wait4`` (sets returncode).

    The wait wakes when the process exits (its pidfd turns readable), so wall times are
    exact: a poll loop with sleeps would round every ~0.1 s command up to its next wake-up.
    Returns its CPU seconds (user + system, waited-for descendants included), or None
    after a timeout, when its group has been ended with SIGINT then SIGKILL.
    """
    if proc.returncode is not None:  # already reaped (by Popen.poll)
        return 0.0
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:  # already reaped elsewhere
        proc.wait()
        return 0.0
    try:
        ready = select.poll()
        ready.register(fd, select.POLLIN)
        if not ready.poll(max(0.0, timeout) * 1000):
            kill_group(proc)
            return None
    finally:
        os.close(fd)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # reaped elsewhere
        proc.wait()
        return 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    _LIVE.pop(proc.pid, None)
    return usage.ru_utime + usage.ru_stime


def _cmd(argv: Sequence[str | os.PathLike[str]]) -> str:
    return " ".join(str(a) for a in argv)[:160]


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[:400]


def kill_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """End a child started with ``start_new_session``: SIGINT, then SIGKILL, then reap."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            _LIVE.pop(proc.pid, None)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    if proc.poll() is not None:
        _LIVE.pop(proc.pid, None)


# ----------------------------------------------------------------------- CPU accounting


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``'s process tree so far.

    Live threads are read from ``/proc/P/task/T/schedstat`` (nanoseconds); threads that
    already exited count through ``utime+stime`` of ``/proc/P/stat`` (whichever is larger)
    and reaped children through ``cutime+cstime``.
    """
    total = 0.0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            reaped = int(fields[13]) + int(fields[14])
            live = 0
            for t in os.scandir(f"/proc/{p}/task"):
                with open(f"{t.path}/schedstat", "rb") as f:
                    live += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        total += max(live / 1e9, ticks / HZ) + reaped / HZ
    return total


def fd_targets(pid: int) -> Iterator[tuple[int, str]]:
    """(fd, link target) of each open descriptor of ``pid``; nothing when unreadable."""
    try:
        entries = list(os.scandir(f"/proc/{pid}/fd"))
    except OSError:
        return
    for e in entries:
        with contextlib.suppress(OSError):
            yield int(e.name), os.readlink(e.path)


def perf_event_fds(pid: int) -> int:
    """Number of perf_event descriptors open in ``pid``'s process tree."""
    return sum(
        1 for p in tree_pids(pid) for _, target in fd_targets(p) if "[perf_event]" in target
    )


_FDINFO = re.compile(r"^(prog_id|run_time_ns|run_cnt):\s+(\d+)$", re.M)


def bpf_prog_stats(pid: int) -> dict[int, tuple[int, int]]:
    """prog_id -> (run_time_ns, run_cnt) of the BPF programs whose fds ``pid``'s tree holds.

    The kernel fills run_time_ns and run_cnt only while BPF statistics are enabled.
    """
    progs: dict[int, tuple[int, int]] = {}
    for p in tree_pids(pid):
        for fd, target in fd_targets(p):
            if target != "anon_inode:bpf-prog":
                continue
            try:
                with open(f"/proc/{p}/fdinfo/{fd}") as f:
                    info = dict(_FDINFO.findall(f.read()))
            except OSError:
                continue
            if "prog_id" in info:
                progs[int(info["prog_id"])] = (
                    int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0)))
    return progs


# ------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class Spread:
    """Median and range of repeated measurements."""

    n: int
    median: float
    lo: float
    hi: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        """Spread of ``values``; None when empty."""
        vals = sorted(v for v in values if v is not None)
        if not vals:
            return None
        if len(vals) >= 2:
            q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
        else:
            q1 = q3 = vals[0]
        return cls(len(vals), statistics.median(vals), vals[0], vals[-1], q1, q3)

    def fmt(self, digits: int = 3, scale: float = 1.0, unit: str = "") -> str:
        """``median [min-max]`` (en dash) with ``digits`` significant digits."""
        def g(v: float) -> str:
            x = v * scale
            return f"{x:,.0f}" if abs(x) >= 10 ** digits else f"{x:.{digits}g}"
        if self.n == 1:
            return f"{g(self.median)}{unit} (n=1)"
        return f"{g(self.median)}{unit} [{g(self.lo)}\u2013{g(self.hi)}]"


def fmt_spread(values: Sequence[float], digits: int = 3, scale: float = 1.0,
               unit: str = "") -> str:
    """:meth:`Spread.fmt` of ``values``, or ``n/a``."""
    s = Spread.of(values)
    return s.fmt(digits, scale, unit) if s else "n/a"


def ratios(num: Sequence[float | None], den: Sequence[float | None]) -> list[float]:
    """Per-run ratios of paired measurements (runs where either is missing are skipped)."""
    return [a / b for a, b in zip(num, den, strict=False)
            if a is not None and b is not None and b > 0]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def rotated(items: Sequence[str], k: int) -> list[str]:
    """``items`` rotated left by ``k``: interleaving order that changes run by run."""
    k %= len(items)
    return list(items[k:]) + list(items[:k])


# --------------------------------------------------------------------------- workload


def build_workload(work: Path) -> Path:
    """Compile ``bench/workload.c`` with frame pointers into ``work``."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BenchError("no C compiler (gcc) found")
    exe = work / "workload"
    run_timed([cc, "-O2", "-g", "-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer",
               "-pthread", "-o", exe, BENCH / "workload.c"], timeout=120)
    return exe


def workload_times(output: str) -> tuple[float, float]:
    """(elapsed_s, cpu_s) that the workload printed."""
    m = re.search(r"elapsed_s=([0-9.]+) cpu_s=([0-9.]+)", output)
    if not m:
        raise BenchError(f"workload printed no times: {output!r}")
    return float(m.group(1)), float(m.group(2))


def calibrate(exe: Path, seconds: float, threads: int) -> int:
    """Iterations for which the workload takes about ``seconds`` on this machine now."""
    iters = 2000
    while True:
        el = workload_times(run_timed([exe, str(iters), str(threads)]).stdout)[0]
        if el >= 0.25 or iters > 10**9:
            return max(1, int(iters * seconds / el))
        iters *= 4


def load_average() -> str:
    """``/proc/loadavg``'s first three fields."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"

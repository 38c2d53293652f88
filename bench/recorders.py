"""Launch, watch and stop the recorders under test: bee record, perf record, profile-bpfcc.

A :class:`Session` is one recorder run: launched in its own process group, "ready" when it
is sampling (bee: its ``Recording (...)`` line on stderr; perf and profile-bpfcc: when their
perf_event descriptors are open), stopped with SIGINT (SIGKILL after a timeout) and reaped
with ``wait4`` so that the CPU of its whole tree is known. CPU is split into start-up
(launch to ready, or to :meth:`Session.begin_steady`), steady state (from there to SIGINT)
and tear-down (SIGINT to exit).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    BEE,
    NCPU,
    BenchError,
    bpf_prog_stats,
    kill_group,
    perf_event_fds,
    reap,
    track,
)
from common import tree_cpu as _tree_cpu

TOOLS = ("bee", "perf", "bcc")
#: Another bee (e.g. a checkout of main: its `.venv/bin/bee`) measured beside this one as
#: "bee-base" in section 1 (run.py --baseline-bee), to see what a change costs.
BASELINE_BEE: Path | None = None
BEE_TOOLS = ("bee", "bee-base")
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0


def profile_bpfcc() -> str | None:
    """Path of bcc's profile tool, if installed."""
    return shutil.which("profile-bpfcc") or shutil.which("profile-bpfcc.py")


def argv_for(tool: str, freq: int, out: Path, buildid_dir: Path,
             monotonic: bool = False) -> list[str]:
    """Command line recording the whole system at ``freq`` Hz into ``out``."""
    if tool == "bee":
        return [str(BEE), "record", "-F", str(freq), "-o", str(out)]
    if tool == "bee-base" and BASELINE_BEE is not None:
        return [str(BASELINE_BEE), "record", "-F", str(freq), "-o", str(out)]
    if tool == "perf":
        clock = ["-k", "CLOCK_MONOTONIC"] if monotonic else []
        return ["perf", "--buildid-dir", str(buildid_dir), "record", "-g", "-F", str(freq),
                "-a", *clock, "-o", str(out)]
    if tool == "bcc":
        exe = profile_bpfcc()
        if exe is None:
            raise BenchError("profile-bpfcc is not installed (bpfcc-tools)")
        return [exe, "-F", str(freq), "-f"]
    raise ValueError(tool)


@dataclass
class Session:
    """One recorder run; see the module docstring."""

    tool: str
    argv: list[str]
    out: Path
    proc: subprocess.Popen[bytes]
    t_launch: float
    t_ready: float | None = None
    cpu_ready: float = 0.0
    t_steady: float | None = None
    cpu_steady_start: float = 0.0
    t_stop: float | None = None
    cpu_stop: float = 0.0
    cpu_total: float | None = None
    bpf: dict[int, tuple[int, int]] = field(default_factory=dict)
    stderr_lines: list[str] = field(default_factory=list)
    _ready_event: threading.Event = field(default_factory=threading.Event)

    @property
    def startup_s(self) -> float | None:
        """Launch to ready, seconds."""
        return None if self.t_ready is None else self.t_ready - self.t_launch

    def begin_steady(self) -> None:
        """Mark the start of the steady state (default: the moment it became ready)."""
        self.t_steady = time.monotonic()
        self.cpu_steady_start = _tree_cpu(self.proc.pid)

    @property
    def steady_s(self) -> float | None:
        """Start of the steady state to SIGINT, seconds."""
        start = self.t_steady if self.t_steady is not None else self.t_ready
        if start is None or self.t_stop is None:
            return None
        return self.t_stop - start

    @property
    def cpu_startup(self) -> float:
        """CPU seconds from launch to the start of the steady state."""
        return self.cpu_steady_start if self.t_steady is not None else self.cpu_ready

    @property
    def cpu_steady(self) -> float:
        """CPU seconds between the start of the steady state and SIGINT."""
        return max(0.0, self.cpu_stop - self.cpu_startup)

    @property
    def cpu_teardown(self) -> float | None:
        """CPU seconds from SIGINT to exit."""
        return None if self.cpu_total is None else max(0.0, self.cpu_total - self.cpu_stop)

    def bpf_totals(self) -> tuple[int, int]:
        """(run_time_ns, run_cnt) summed over the recorder's BPF programs."""
        return (sum(v[0] for v in self.bpf.values()), sum(v[1] for v in self.bpf.values()))


def launch(tool: str, argv: list[str], out: Path) -> Session:
    """Start a recorder; call :func:`wait_ready` next."""
    stdout = open(out, "wb") if tool == "bcc" else subprocess.DEVNULL  # noqa: SIM115
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        t0 = time.monotonic()
        proc = track(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                                      stderr=subprocess.PIPE, env=env,
                                      start_new_session=True))
    finally:
        if tool == "bcc":
            stdout.close()  # type: ignore[union-attr]
    s = Session(tool, argv, out, proc, t0)
    threading.Thread(target=_read_stderr, args=(s,), daemon=True).start()
    return s


def _read_stderr(s: Session) -> None:
    assert s.proc.stderr is not None
    for raw in s.proc.stderr:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if s.tool in BEE_TOOLS and line.startswith("Recording (") and s.t_ready is None:
            s.t_ready = time.monotonic()
            s._ready_event.set()
        s.stderr_lines.append(line)
    s._ready_event.set()  # EOF: the recorder ended (wait_ready reports it)


def wait_ready(s: Session, timeout: float = READY_TIMEOUT) -> None:
    """Block until ``s`` samples; raises BenchError (after ending it) when it cannot."""
    deadline = s.t_launch + timeout
    if s.tool in BEE_TOOLS:
        s._ready_event.wait(timeout)
    else:
        need = NCPU  # one cpu-clock event per CPU (perf adds a dummy event per CPU)
        while time.monotonic() < deadline and s.proc.poll() is None:
            if perf_event_fds(s.proc.pid) >= need:
                s.t_ready = time.monotonic()
                break
            time.sleep(0.005)
    if s.t_ready is None:
        alive = s.proc.poll() is None
        abort(s)
        why = "did not become ready in time" if alive else "exited before sampling"
        raise BenchError(f"{s.tool} {why}: {' | '.join(s.stderr_lines[-3:])[:300]}")
    s.cpu_ready = _tree_cpu(s.proc.pid)


def stop(s: Session, timeout: float = STOP_TIMEOUT) -> None:
    """Read BPF stats and CPU, SIGINT the recorder, reap it (SIGKILL after ``timeout``)."""
    if s.proc.poll() is None and s.proc.returncode is None:
        s.bpf = bpf_prog_stats(s.proc.pid)
        s.cpu_stop = _tree_cpu(s.proc.pid)
        s.t_stop = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(s.proc.pid, signal.SIGINT)
    s.cpu_total = reap(s.proc, timeout)
    if s.cpu_total is None:
        kill_group(s.proc)
        raise BenchError(f"{s.tool} did not stop within {timeout:.0f} s after SIGINT")


def abort(s: Session, grace: float = 3.0) -> None:
    """End a recorder after a failure or an interruption; never raises."""
    kill_group(s.proc, grace)


def check_output(s: Session) -> None:
    """Raise BenchError when the recorder failed or wrote nothing."""
    if s.proc.returncode not in (0, -signal.SIGINT, 130):
        raise BenchError(f"{s.tool} exited {s.proc.returncode}: "
                         f"{' | '.join(s.stderr_lines[-3:])[:300]}")
    if not s.out.exists() or s.out.stat().st_size == 0:
        raise BenchError(f"{s.tool} wrote no output ({' | '.join(s.stderr_lines[-2:])[:200]})")

"""`bee record`: sample stacks with BPF and write one recording file.

The loop polls announcements of newly sampled processes (capturing their maps and
build-ids while they exist) and drains the kernel's counts every `drain_interval`
seconds. At the end it adds the needed kallsyms entries and writes the file atomically.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bee_record import __version__, codec
from bee_record.errors import RecordError
from bee_record.kallsyms import kernel_info
from bee_record.procs import ProcessTable
from bee_record.recording import Header, Recording, Sample
from bee_record.sampler import LOST_HINTS, RawCount, Sampler, SamplerOptions, check_privileges

_MIN_FREE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """Everything `bee record` was asked to do."""

    output: Path | None = None
    pids: tuple[int, ...] = ()
    command: tuple[str, ...] = ()
    frequency: int = 99
    duration: float | None = None
    keep_cmdline: bool = True
    drain_interval: float = 1.0
    sampler: SamplerOptions = SamplerOptions()
    quiet: bool = False
    argv: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What a finished recording produced."""

    path: Path
    samples: int
    processes: int
    lost: int
    lost_hints: tuple[str, ...]
    size: int
    exit_code: int  # the command's exit code in `-- CMD` mode, else 0


def default_output(now: float | None = None) -> Path:
    """`bee-HOST-YYYYmmdd-HHMMSS.bee` in the current folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
    return Path(f"bee-{host}-{stamp}.bee")


def check_output(path: Path) -> None:
    """Fail early (before loading BPF) when the output cannot be written."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise RecordError(f"{path}: is a directory; give a file name with -o")
    if not folder.is_dir():
        raise RecordError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RecordError(f"{path}: folder {folder} is not writable")
    try:
        st = os.statvfs(folder)
    except OSError as exc:
        raise RecordError(f"{path}: cannot check free space: {exc.strerror}") from None
    if st.f_bavail * st.f_frsize < _MIN_FREE_BYTES:
        raise RecordError(f"{path}: no space left in {folder}")


class _Collector:
    """Turns drained counts into the recording's tables."""

    def __init__(self, table: ProcessTable) -> None:
        self.table = table
        self.stacks: dict[tuple[int, ...], int] = {}
        self.samples: dict[tuple[int, int, int, str, int, int], int] = {}
        self.kernel_addresses: set[int] = set()
        self._refreshed: set[int] = set()

    def stack(self, value: tuple[int, ...] | int) -> int:
        if isinstance(value, int):
            return value
        idx = self.stacks.get(value)
        if idx is None:
            idx = self.stacks[value] = len(self.stacks)
        return idx

    def add(self, raw: RawCount) -> None:
        proc = self.table.index_of(raw.pid, raw.generation, raw.comm)
        if isinstance(raw.user_stack, tuple) and proc not in self._refreshed and not all(
            self.table.covers(proc, a) for a in raw.user_stack
        ):
            self._refreshed.add(proc)
            self.table.refresh(proc)
        if isinstance(raw.kernel_stack, tuple):
            self.kernel_addresses.update(raw.kernel_stack)
        key = (proc, raw.tid, raw.cpu, raw.comm, self.stack(raw.user_stack),
               self.stack(raw.kernel_stack))
        self.samples[key] = self.samples.get(key, 0) + raw.count

    def end_drain(self) -> None:
        self._refreshed.clear()


class _Stop:
    """Signal flag: SIGINT, SIGTERM and SIGHUP end the recording cleanly."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, object] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = self.signal or signum

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


def _spawn_held(command: tuple[str, ...]) -> tuple[int, int]:
    """Fork a child that waits on a pipe before exec'ing `command`; return (pid, write fd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(w)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if os.read(r, 1) != b"x":
                os._exit(127)
            os.close(r)
            os.execvp(command[0], list(command))
        except OSError as exc:
            os.write(2, f"bee record: cannot run {command[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    os.close(r)
    return pid, w


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def record(opts: RecordOptions) -> RecordResult:
    """Run a recording to completion and write it; see RecordOptions."""
    output = opts.output or default_output()
    check_output(output)
    for pid in opts.pids:
        if not os.path.isdir(f"/proc/{pid}"):
            raise RecordError(f"no process with pid {pid}")
    if opts.command and "/" not in opts.command[0] and shutil.which(opts.command[0]) is None:
        raise RecordError(f"command not found: {opts.command[0]}")
    check_privileges()
    if opts.frequency <= 0 or opts.frequency > 100_000:
        raise RecordError(f"frequency {opts.frequency} Hz is out of range (1 to 100000)")
    filter_pids = bool(opts.pids or opts.command)
    sampler = Sampler(_with_filter(opts.sampler, opts.frequency, filter_pids))
    table = ProcessTable(keep_cmdline=opts.keep_cmdline)
    collector = _Collector(table)
    stop = _Stop()
    child = None
    exit_code = 0
    try:
        for pid in opts.pids:
            sampler.add_target(pid)
        if opts.command:
            child, go = _spawn_held(opts.command)
            sampler.add_target(child)
        stop.install()
        sampler.start()
        start_wall, start = time.time_ns(), time.monotonic()
        if child is not None:
            os.write(go, b"x")
            os.close(go)
        if not opts.quiet:
            what = f"{opts.frequency} Hz"
            print(f"Recording at {what}; Ctrl-C to stop.", file=sys.stderr)
        next_drain = start + opts.drain_interval
        while stop.signal is None:
            for pid, gen in sampler.poll(100):
                table.capture(pid, gen)
            now = time.monotonic()
            if now >= next_drain:
                sampler.drain(collector.add)
                collector.end_drain()
                next_drain = now + opts.drain_interval
            if opts.duration is not None and now - start >= opts.duration:
                break
            if child is not None:
                done, status = os.waitpid(child, os.WNOHANG)
                if done:
                    exit_code, child = _exit_code(status), None
                    break
            elif opts.pids and not any(os.path.isdir(f"/proc/{p}") for p in opts.pids):
                break
        duration = time.monotonic() - start
        stop.restore()
        _ignore_signals()  # a second Ctrl-C must not interrupt the write
        sampler.stop()
        for pid, gen in sampler.poll(0):
            table.capture(pid, gen)
        sampler.drain(collector.add)
        sampler.drain(collector.add)
        lost = sampler.lost()
    finally:
        sampler.close()
        if child is not None:
            exit_code = _finish_child(child, stop.signal)
    rec = _build(opts, collector, table, lost, start_wall, duration)
    size = codec.write(rec, output)
    hints = tuple(sorted({LOST_HINTS[k] for k, v in lost.items() if v and k in LOST_HINTS}))
    return RecordResult(output, rec.total_samples, len({s.process for s in rec.samples}),
                        rec.total_lost, hints, size, exit_code)


def _with_filter(base: SamplerOptions, frequency: int, filter_pids: bool) -> SamplerOptions:
    from dataclasses import replace

    return replace(base, frequency=frequency, filter_pids=filter_pids)


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def _finish_child(pid: int, sig: int | None) -> int:
    """Stop a still-running command we started; return its exit code."""
    try:
        os.kill(pid, sig or signal.SIGTERM)
        for _ in range(50):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return _exit_code(status)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        return _exit_code(os.waitpid(pid, 0)[1])
    except ChildProcessError:
        return 0
    except ProcessLookupError:
        return 0


def _build(opts: RecordOptions, col: _Collector, table: ProcessTable, lost: dict[str, int],
           start_wall: int, duration: float) -> Recording:
    samples = tuple(
        Sample(process=p, tid=tid, cpu=cpu, comm=comm, user_stack=u, kernel_stack=k,
               count=n, weight=n)
        for (p, tid, cpu, comm, u, k), n in sorted(col.samples.items(), key=lambda kv: kv[0])
    )
    if opts.command:
        target = "command " + (" ".join(opts.command) if opts.keep_cmdline else opts.command[0])
    elif opts.pids:
        target = "pid " + ",".join(map(str, opts.pids))
    else:
        target = "system"
    header = Header(
        host=socket.gethostname(), kernel_release=os.uname().release, arch=os.uname().machine,
        start_time_ns=start_wall, duration_ns=int(duration * 1e9),
        frequency_hz=opts.frequency, mode="cpu", weight_unit="samples", events=("cpu-clock",),
        target=target, bee_version=__version__, argv=opts.argv if opts.keep_cmdline else (),
    )
    return Recording(
        header=header, binaries=tuple(table.binaries), processes=tuple(table.processes),
        stacks=tuple(col.stacks), samples=samples, kernel=kernel_info(col.kernel_addresses),
        lost={k: v for k, v in lost.items()},
    )

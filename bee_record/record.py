"""`bee record`: sample stacks with BPF and write one recording file.

The loop polls announcements of newly sampled processes (capturing their maps and
build-ids while they exist) and drains the kernel's counts every `drain_interval`
seconds. At the end it adds the needed kallsyms entries and writes the file atomically.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import FrameType

from bee_contract import __version__, codec
from bee_contract.errors import RecordError
from bee_contract.recording import Header
from bee_record import probes
from bee_record.collect import Collector, rotated_path
from bee_record.procs import ProcessTable
from bee_record.sampler import LOST_HINTS, Sampler, SamplerOptions, check_privileges

_MIN_FREE_BYTES = 1 << 20
_MAX_SAMPLE_RATE = "/proc/sys/kernel/perf_event_max_sample_rate"
_YEAR_S = 366 * 86400

#: (option, where in RecordOptions, lowest, highest): checked before anything starts.
RANGES: tuple[tuple[str, str, float, float], ...] = (
    ("--duration", "duration", 0.01, _YEAR_S),
    ("--rotate", "rotate", 0.1, _YEAR_S),
    ("--drain-interval", "drain_interval", 0.01, 3600),
    ("--frequency", "frequency", 1, 100_000),
    ("--min-block", "min_block_us", 0, 1 << 40),
    ("--max-block", "max_block_us", 0, 1 << 40),
    ("--stack-storage-size", "sampler.stack_storage_size", 0, 1 << 18),  # 0: by frequency
    ("--counts-size", "sampler.counts_size", 1, 1 << 22),
    ("--procs-size", "sampler.procs_size", 1, 1 << 22),
    ("--perf-buffer-pages", "sampler.perf_buffer_pages", 1, 4096),  # and a power of two
    ("--time-resolution", "time_resolution_ms", 10, 10_000),
)


class Mode(StrEnum):
    """What `bee record --mode` samples (`-e` events switch to the internal "event" mode)."""

    CPU = "cpu"  # on-CPU samples
    OFFCPU = "offcpu"  # blocked time, from sched_switch
    WALL = "wall"  # both, weighted in nanoseconds


MODES = (*Mode, "event")


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """Everything `bee record` was asked to do."""

    output: Path | None = None
    pids: tuple[int, ...] = ()
    command: tuple[str, ...] = ()
    frequency: int = 99
    mode: str = Mode.CPU  # a Mode, or "event" (set by -e)
    min_block_us: int = 1
    max_block_us: int | None = None
    rotate: float | None = None  # seconds per file of a numbered series
    events: tuple[str, ...] = ()  # -e probe specs; they switch the mode to "event"
    cgroup: Path | None = None  # cgroup v2 folder to restrict recording to
    duration: float | None = None
    keep_cmdline: bool = True
    drain_interval: float = 1.0
    time_resolution_ms: int = 100  # width of the time buckets samples are counted in
    sampler: SamplerOptions = field(default_factory=SamplerOptions)
    quiet: bool = False
    argv: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What a finished recording produced."""

    path: Path
    files: tuple[Path, ...]
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
    try:
        if path.is_dir():
            raise RecordError(f"{path}: is a directory; give a file name with -o")
        if not folder.is_dir():
            raise RecordError(f"{path}: folder {folder} does not exist")
        st = os.statvfs(folder)
    except OSError as exc:
        raise RecordError(f"{path}: cannot use this output: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RecordError(f"{path}: folder {folder} is not writable")
    if st.f_bavail * st.f_frsize < _MIN_FREE_BYTES:
        raise RecordError(f"{path}: no space left in {folder}")


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


def cgroup2_root() -> Path:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified)."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    return Path(parts[1])
    except OSError:
        pass
    raise RecordError("--cgroup needs a cgroup v2 hierarchy mounted (none found)")


def cgroup_id(path: Path) -> tuple[int, int]:
    """(cgroup v2 id, depth below the root) of a cgroup folder, for the BPF filter."""
    root = cgroup2_root()
    full = path if path.is_absolute() else root / path
    try:
        rel = full.resolve().relative_to(root)
        st = os.stat(full)
    except ValueError:
        raise RecordError(f"--cgroup {path}: not under the cgroup v2 root {root}") from None
    except OSError as exc:
        raise RecordError(f"--cgroup {path}: {exc.strerror}") from None
    if not (full / "cgroup.procs").exists():
        raise RecordError(f"--cgroup {path}: not a cgroup folder")
    return st.st_ino, len(rel.parts)


def _mode(opts: RecordOptions) -> str:
    if opts.events and opts.mode not in ("cpu", "event"):
        raise RecordError("-e events cannot be combined with --mode offcpu or wall")
    return "event" if opts.events else opts.mode


def _sampler_options(opts: RecordOptions, filter_pids: bool) -> SamplerOptions:
    mode = _mode(opts)
    if opts.mode not in MODES or (opts.mode == "event" and not opts.events):
        raise RecordError(f"--mode {opts.mode}: choose one of {', '.join(Mode)}, "
                          "or give -e events")
    if len(opts.events) > probes.MAX_PROBES:
        raise RecordError(f"at most {probes.MAX_PROBES} -e events")
    parsed = tuple(probes.parse(e) for e in opts.events)
    for p in parsed:
        probes.check(p)
    max_ns = (1 << 64) - 1 if opts.max_block_us is None else opts.max_block_us * 1000
    stacks = opts.sampler.stack_storage_size or (16384 if opts.frequency <= 199 else 32768)
    return replace(
        opts.sampler, frequency=opts.frequency, filter_pids=filter_pids,
        stack_storage_size=stacks,
        on_cpu=mode in ("cpu", "wall"), off_cpu=mode in ("offcpu", "wall"), probes=parsed,
        cgroup=cgroup_id(opts.cgroup) if opts.cgroup is not None else None,
        cpu_weight=1 if mode == "cpu" else 1_000_000_000 // opts.frequency,
        min_block_ns=opts.min_block_us * 1000, max_block_ns=max_ns,
        time_resolution_ns=opts.time_resolution_ms * 1_000_000,
    )


class _Writer:
    """Writes the recording, or each file of a --rotate series."""

    def __init__(self, opts: RecordOptions, output: Path, collector: Collector) -> None:
        self.opts, self.output, self.collector = opts, output, collector
        self.files: list[Path] = []
        self.samples = self.lost = self.size = 0
        self.processes: set[int] = set()
        self.lost_before: dict[str, int] = {}
        self.hints: set[str] = set()

    def write(self, sampler: Sampler, file_start_ns: int, end_ns: int,
              lost: dict[str, int]) -> None:
        """Write the samples collected since `file_start_ns` (CLOCK_MONOTONIC) as one file.

        The file starts at the beginning of the time bucket holding `file_start_ns`, so
        its buckets line up with the kernel's: a bucket cut by a rotation is in both files.
        """
        seq = len(self.files) + 1 if self.opts.rotate else 0
        delta = {k: v - self.lost_before.get(k, 0) for k, v in lost.items()}
        self.lost_before = dict(lost)
        res = self.opts.time_resolution_ms * 1_000_000
        first = max(0, file_start_ns - sampler.start_ns) // res
        start_wall = sampler.start_wall_ns + first * res
        duration = max(0, end_ns - sampler.start_ns - first * res)
        with _gc_paused():  # every object made here lives until the file is written
            rec = self.collector.build(_header(self.opts, start_wall, duration, seq), delta,
                                       first)
            path = Path(rotated_path(self.output, seq)) if seq else self.output
            self.size += codec.write(rec, path)
        self.files.append(path)
        self.samples += rec.total_samples
        self.lost += rec.total_lost
        self.processes.update(p.pid for p in rec.processes)
        self.hints.update(LOST_HINTS[k] for k, v in delta.items() if v and k in LOST_HINTS)
        self.collector.reset()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection within: for a burst of allocations that all stay alive."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def check_ranges(opts: RecordOptions) -> None:
    """One line naming the option and its range when a value is out of it (RANGES)."""
    for option, where, lo, hi in RANGES:
        value: object = opts
        for part in where.split("."):
            value = getattr(value, part)
        if value is not None and not lo <= value <= hi:  # type: ignore[operator]
            raise RecordError(f"{option} {_num(value)}: out of range ({_num(lo)} to {_num(hi)})")
    pages = opts.sampler.perf_buffer_pages
    if pages & (pages - 1):
        raise RecordError(f"--perf-buffer-pages {pages}: a power of two from 1 to 4096")
    if opts.max_block_us is not None and opts.max_block_us < opts.min_block_us:
        raise RecordError(f"--max-block {opts.max_block_us}: less than --min-block "
                          f"{opts.min_block_us}")


def _num(x: object) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def clamp_frequency(frequency: int, limit_file: str = _MAX_SAMPLE_RATE) -> int:
    """`frequency`, lowered (with a warning) to the kernel's perf_event_max_sample_rate."""
    try:
        with open(limit_file) as f:
            limit = int(f.read().strip())
    except (OSError, ValueError):
        return frequency
    if 0 < limit < frequency:
        print(f"bee: warning: -F {frequency} is above the kernel's limit "
              f"(kernel.perf_event_max_sample_rate = {limit}); recording at {limit} Hz",
              file=sys.stderr)
        return limit
    return frequency


def record(opts: RecordOptions) -> RecordResult:
    """Run a recording to completion and write it; see RecordOptions."""
    check_ranges(opts)
    if _mode(opts) in ("cpu", "wall"):
        opts = replace(opts, frequency=clamp_frequency(opts.frequency))
    output = opts.output or default_output()
    check_output(output)
    if opts.rotate and output.exists() and not output.is_file():
        raise RecordError(f"{output}: --rotate writes a series of files; give a file name")
    for pid in opts.pids:
        if not os.path.isdir(f"/proc/{pid}"):
            raise RecordError(f"no process with pid {pid}")
    opts = replace(opts, pids=tuple(dict.fromkeys(_tgid(p) for p in opts.pids)))
    if opts.command and "/" not in opts.command[0] and shutil.which(opts.command[0]) is None:
        raise RecordError(f"command not found: {opts.command[0]}")
    sampler_opts = _sampler_options(opts, bool(opts.pids or opts.command))
    check_privileges()
    sampler = Sampler(sampler_opts)
    unwind = sampler.unwind
    res_ns = opts.time_resolution_ms * 1_000_000
    collector = Collector(
        ProcessTable(keep_cmdline=opts.keep_cmdline,
                     on_maps=unwind.load_process if unwind is not None else None,
                     python=sampler_opts.python),
        clock=lambda: max(0, time.monotonic_ns() - sampler.start_ns) // res_ns)
    collector.table.on_python = sampler.add_python
    writer = _Writer(opts, output, collector)
    stop = _Stop()
    child = None
    exit_code = 0
    try:
        for pid in opts.pids:
            sampler.add_target(pid)
        if opts.command:
            child, go = _spawn_held(opts.command)
            sampler.add_target(child)
            collector.skip.add((child, 0))
        stop.install()
        sampler.start()
        # What start-up made (bcc, the program, unwind tables) lives as long as the
        # recording: keep the collector from scanning it again at every full collection.
        gc.freeze()
        start = time.monotonic()
        file_start = sampler.start_ns
        if child is not None:
            os.write(go, b"x")
            os.close(go)
        if not opts.quiet:
            mode = _mode(opts)
            what = {"offcpu": "off-CPU time", "event": ", ".join(opts.events)}.get(
                mode, f"{opts.frequency} Hz")
            print(f"Recording ({mode}, {what}); Ctrl-C to stop.", file=sys.stderr)
        next_drain = start + opts.drain_interval
        next_rotate = start + opts.rotate if opts.rotate else None
        pending: list[tuple[int, int]] = []  # announced, not captured yet
        while stop.signal is None:
            pending += sampler.poll(100)  # returns early when a process is announced
            # a capture can take seconds (unwind tables): the deadline and signals come first
            while pending and stop.signal is None and not (
                    opts.duration is not None and time.monotonic() - start >= opts.duration):
                collector.announced(*pending.pop(0))
            collector.watch_perf_maps()
            collector.read_python_codes(sampler.take_python_codes())
            now = time.monotonic()
            if opts.duration is not None and now - start >= opts.duration:
                break  # stop sampling first: at high rates a drain under load takes long
            if next_rotate is not None and now >= next_rotate:
                sampler.drain(collector.add)
                collector.end_drain()
                writer.write(sampler, file_start, int(now * 1e9), sampler.lost())
                file_start = int(now * 1e9)
                next_rotate = now + (opts.rotate or 0)
                next_drain = now + opts.drain_interval
            elif now >= next_drain:
                sampler.drain(collector.add)
                collector.end_drain()
                next_drain = now + opts.drain_interval
            if child is not None:
                done, status = os.waitpid(child, os.WNOHANG)
                if done:
                    exit_code, child = _exit_code(status), None
                    break
            elif opts.pids and not any(os.path.isdir(f"/proc/{p}") for p in opts.pids):
                break
        _ignore_signals()  # from here on a second Ctrl-C must not interrupt the write
        sampler.stop()
        end = time.monotonic_ns()
        collector.table.on_maps = None  # sampling is over: unwind tables no longer matter
        for pid, gen in pending + sampler.poll(0):
            collector.announced(pid, gen)
        collector.read_python_codes(sampler.take_python_codes())
        sampler.drain(collector.add)
        sampler.drain(collector.add)
        lost = sampler.lost()
    finally:
        sampler.close()
        if child is not None:
            exit_code = _finish_child(child, stop.signal)
    try:
        writer.write(sampler, file_start, end, lost)
    finally:
        stop.restore()
    return RecordResult(writer.files[0], tuple(writer.files), writer.samples,
                        len(writer.processes), writer.lost, tuple(sorted(writer.hints)),
                        writer.size, exit_code)


def _tgid(pid: int) -> int:
    """The process (thread group) of `pid`, so a thread id given to -p records its process."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return pid


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
    except (ChildProcessError, ProcessLookupError):
        return 0


def _header(opts: RecordOptions, start_wall: int, duration_ns: int, sequence: int) -> Header:
    if opts.command:
        target = "command " + (" ".join(opts.command) if opts.keep_cmdline else opts.command[0])
    elif opts.pids:
        target = "pid " + ",".join(map(str, opts.pids))
    else:
        target = "system"
    mode = _mode(opts)
    events: tuple[str, ...] = ("cpu-clock",)
    if mode != "cpu":
        events = ("cpu-clock", "sched:sched_switch",
                  *(probes.parse(e).event_name for e in opts.events))
    unit = {"cpu": "samples", "event": "events"}.get(mode, "nanoseconds")
    return Header(
        host=socket.gethostname(), kernel_release=os.uname().release, arch=os.uname().machine,
        start_time_ns=start_wall, duration_ns=duration_ns,
        frequency_hz=opts.frequency if mode in ("cpu", "wall") else 0, mode=mode,
        weight_unit=unit, events=events,
        target=target, bee_version=__version__, argv=opts.argv if opts.keep_cmdline else (),
        sequence=sequence, time_resolution_ns=opts.time_resolution_ms * 1_000_000,
        unwinder=opts.sampler.unwinder if opts.sampler.user_stacks else "",
    )

"""Load `bpf/profile.c` (through `bee_record.bpf_load`: bcc, or its cache), attach it, and
drain its maps.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from bee_contract.errors import RecordError
from bee_contract.recording import LOST_STACK, NO_STACK, Unwinder
from bee_record import bpf_load
from bee_record.mapdrain import BatchDrain
from bee_record.probes import Probe, attach
from bee_record.python.detect import PyRuntime
from bee_record.python.layout import MODEL_CSTACK_SHIM
from bee_record.unwind.loader import UnwindLoader

#: Names of the per-CPU lost counters, in the order of the LOST_* slots in profile.c.
LOST_NAMES = ("user_stack_errors", "kernel_stack_errors", "counts_map_full", "procs_map_full")
#: Names of the Python lost counters, in the order of the PY_LOST_* slots in python.c.
PY_LOST_NAMES = ("python_stacks_full", "python_frames_unreadable")
#: Options that prevent each kind of loss, printed when something was lost.
LOST_HINTS = {
    "user_stack_errors": "--stack-storage-size",
    "kernel_stack_errors": "--stack-storage-size",
    "counts_map_full": "--counts-size or a shorter --drain-interval",
    "procs_map_full": "--procs-size",
    "announcements_lost": "--perf-buffer-pages",
    "python_stacks_full": "--python-stacks-size or a shorter --drain-interval",
}
#: Program type of the tail-called programs of each kind of attachment.
_KINDS = {"perf": bpf_load.PROG_PERF_EVENT, "tp": bpf_load.PROG_TRACEPOINT,
          "kp": bpf_load.PROG_KPROBE}
_ANNOUNCE = struct.Struct("<II")
_T = TypeVar("_T")
_CAP_PERFMON = 38
_CAP_BPF = 39
_CAP_SYS_ADMIN = 21


@dataclass(frozen=True, slots=True)
class SamplerOptions:
    """How to configure the BPF program."""

    frequency: int = 99
    on_cpu: bool = True  # sample cpu-clock
    off_cpu: bool = False  # account off-CPU time from sched:sched_switch
    cpu_weight: int = 1  # weight of one on-CPU sample (period in ns in wall mode)
    min_block_ns: int = 1000
    max_block_ns: int = (1 << 64) - 1
    filter_pids: bool = False
    user_stacks: bool = True
    kernel_stacks: bool = True
    include_idle: bool = False
    stack_storage_size: int = 16384  # 0: chosen by bee_record.record from the frequency
    counts_size: int = 40960
    procs_size: int = 65536
    perf_buffer_pages: int = 64
    probes: tuple[Probe, ...] = ()  # -e event probes, counted as events 2, 3, ...
    cgroup: tuple[int, int] | None = None  # (cgroup v2 id, level) to restrict to
    python: bool = True  # walk the Python frames of CPython processes (bpf/python.c)
    python_stacks_size: int = 2048
    bpf_cache: bool = True  # load the compiled program from bee's cache when it is there
    unwinder: str = Unwinder.DWARF  # an Unwinder: .eh_frame tables in BPF, or frame pointers
    unwind_rows: int = 1 << 20  # capacity of the shared unwind-row table (8 bytes each)
    time_resolution_ns: int = 100_000_000  # width of the time buckets counts are kept per


@dataclass(slots=True)
class RawCount:
    """The counts of one drained key, all time buckets together, with its stacks read.

    Kernel keys that differ only by time bucket share everything else, so a drain makes
    one of these per such group, and the collector resolves the group once. Not frozen:
    a frozen dataclass's __init__ costs several times more.
    """

    pid: int
    tid: int
    cpu: int
    generation: int
    event: int  # 0 on-CPU sample, 1 off-CPU block
    comm: str
    user_stack: tuple[int, ...] | int  # addresses, or NO_STACK / LOST_STACK
    kernel_stack: tuple[int, ...] | int
    #: Python frames leaf first as (code object address, info), or NO_STACK / LOST_STACK;
    #: a last frame (0, 0) marks a stack cut at the walker's bound.
    python_stack: tuple[tuple[int, int], ...] | int
    #: (time bucket since Sampler.start_ns in time_resolution_ns units, count, weight)
    counts: list[tuple[int, int, int]]


#: `struct bee_key` (bpf/profile.c); cut around its `bucket` field, the two other parts
#: are what the counts of one group of time buckets share.
_KEY = struct.Struct("<5I2iIq16s")
_BUCKET_AT = 28
_SPLIT = struct.Struct(f"<{_BUCKET_AT}sI{_KEY.size - _BUCKET_AT - 4}s")
_HEAD = struct.Struct("<5I2i")
_TAIL = struct.Struct("<q16s")
#: `struct bee_val`: count, weight
_VAL = struct.Struct("<QQ")


def check_privileges(status: str = "/proc/self/status") -> None:
    """Fail with one line unless CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) are effective.

    The effective capabilities decide, not the uid: root in a container or under a reduced
    bounding set may lack them, and the kernel would only say "Operation not permitted".
    """
    eff = None
    try:
        with open(status) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    eff = int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    if eff is None or eff & (1 << _CAP_SYS_ADMIN):
        return  # unknown (no /proc): let the kernel decide
    missing = [name for bit, name in ((_CAP_BPF, "CAP_BPF"), (_CAP_PERFMON, "CAP_PERFMON"))
               if not eff & (1 << bit)]
    if missing:
        how = ("run it with sudo" if os.geteuid() != 0 else
               "this root process lacks them (container or capability bounding set?)")
        raise RecordError(
            "bee record needs the capabilities CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN "
            f"(missing: {', '.join(missing)}, CAP_SYS_ADMIN); {how}"
        )


def _check_kernel_headers() -> None:
    """bcc compiles against the running kernel's headers: say so in one line if absent."""
    release = os.uname().release
    if os.path.exists(f"/lib/modules/{release}/build") or os.path.exists(
            "/sys/kernel/kheaders.tar.xz"):
        return
    raise RecordError(
        f"no kernel headers for {release}: install linux-headers-{release}, or run "
        "scripts/setup.sh, which links the distro's generic headers when there are none"
    )


def _ensure_tracefs() -> None:
    """Mount tracefs if nothing provides it (bcc needs it for tracepoints)."""
    for path in ("/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"):
        if os.path.isdir(path):
            return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"nodev", b"/sys/kernel/tracing", b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise RecordError(f"tracefs is not mounted and mounting it failed: {os.strerror(err)}")


@dataclass(frozen=True, slots=True)
class _Readers:
    """One batch reader per shape of the maps a drain empties (buffers 0 and 1 share)."""

    counts: BatchDrain
    ustacks: BatchDrain | None
    py: BatchDrain | None


def uses_dwarf(opts: SamplerOptions) -> bool:
    """Whether user stacks are unwound from .eh_frame tables (bpf/unwind.c) in BPF."""
    return opts.unwinder == Unwinder.DWARF and opts.user_stacks


#: The source files of the BPF program, in the order bcc compiles them (one text).
SOURCES = ("profile.c", "unwind.c", "python.c")
#: Switches of `struct bee_config`'s flags (BEE_F_* in bpf/profile.c).
F_FILTER_PIDS, F_USER, F_KERNEL, F_IDLE, F_PYTHON, F_DWARF = (1 << i for i in range(6))
#: Tracepoints every recording attaches, and the off-CPU one (function names: bcc's).
_TP_ALWAYS = ("tracepoint__sched__sched_process_exec", "tracepoint__sched__sched_process_fork")
_TP_OFFCPU = "tracepoint__sched__sched_switch"
#: Size of a map an option set does not use (a map cannot have none).
_UNUSED = 1


def program_text() -> str:
    """The C text bcc compiles: profile.c, unwind.c and python.c (one program for every
    option set, see bpf/profile.c)."""
    bpf_dir = resources.files("bee_record.bpf")
    return "\n".join(bpf_dir.joinpath(name).read_text() for name in SOURCES)


def program_flags(opts: SamplerOptions) -> int:
    """The switches `opts` sets in `struct bee_config`."""
    return ((F_FILTER_PIDS if opts.filter_pids else 0) | (F_USER if opts.user_stacks else 0)
            | (F_KERNEL if opts.kernel_stacks else 0) | (F_IDLE if opts.include_idle else 0)
            | (F_PYTHON if opts.python else 0)
            | (F_DWARF if uses_dwarf(opts) else 0))


def map_sizes(opts: SamplerOptions) -> dict[str, int]:
    """The size of each map whose size `opts` sets: from an option, or one entry for the
    maps of a feature not used (the others keep bpf/*.c's sizes)."""
    dwarf, py, off = uses_dwarf(opts), opts.python, opts.off_cpu
    fp_stacks = opts.kernel_stacks or (opts.user_stacks and not dwarf)
    stack, ustack = opts.stack_storage_size, max(1024, opts.stack_storage_size // 4)
    sizes = {"counts0": opts.counts_size, "counts1": opts.counts_size,
             "procs": opts.procs_size}
    for used, names, n in (
            (fp_stacks, ("stacks0", "stacks1"), stack),
            (off and fp_stacks, ("offstacks",), stack),
            (off, ("offstart",), opts.procs_size),
            (opts.filter_pids, ("targets",), None),
            (dwarf, ("urows",), opts.unwind_rows),
            (dwarf, ("ustacks0", "ustacks1"), ustack),
            (dwarf, ("umap_entries", "uprocs"), None),
            (dwarf and off, ("offustacks",), stack),
            (py, ("py_stacks0", "py_stacks1"), opts.python_stacks_size),
            (py, ("py_procs", "py_threads"), None),
            (py and off, ("offpystacks",), stack)):
        for name in names:
            if not used:
                sizes[name] = _UNUSED
            elif n is not None:
                sizes[name] = n
    return sizes


def program_functions(opts: SamplerOptions) -> dict[str, int]:
    """Every function a sampler for `opts` loads, with its BPF program type (those named
    tracepoint__* are attached when loaded)."""
    dwarf = uses_dwarf(opts)
    out = dict.fromkeys(_TP_ALWAYS, bpf_load.PROG_TRACEPOINT)
    if opts.off_cpu:
        out[_TP_OFFCPU] = bpf_load.PROG_TRACEPOINT
    if opts.on_cpu:
        out["bee_on_cpu"] = bpf_load.PROG_PERF_EVENT
    for p in opts.probes:
        out[_event_function(p)] = _KINDS[_event_kind(p)]
    for t in program_types(opts):
        names = ((["bee_unwind_{t}"] if dwarf else [])
                 + (["bee_py_link_{t}", "bee_py_store_{t}"] if opts.python else []))
        out.update({n.format(t=t): _KINDS[t] for n in names})
    return out


def _event_kind(probe: Probe) -> str:
    """The program type (a key of _KINDS) of an event probe's program."""
    return "tp" if probe.kind == "tracepoint" else "kp"


def _event_function(probe: Probe) -> str:
    """The program attached to an event probe (its index comes as the attach cookie)."""
    return f"bee_on_event_{_event_kind(probe)}"


def program_types(opts: SamplerOptions) -> list[str]:
    """Program types that need tail-called programs: perf, tp (tracepoint), kp."""
    types = []
    if opts.on_cpu:
        types.append("perf")
    if opts.off_cpu or any(_event_kind(p) == "tp" for p in opts.probes):
        types.append("tp")
    if any(_event_kind(p) == "kp" for p in opts.probes):
        types.append("kp")
    return types


class Sampler:
    """A loaded and attached instance of the on-CPU sampling program."""

    def __init__(self, opts: SamplerOptions) -> None:
        self.opts = opts
        self._lost_announcements = 0
        self._announced: list[tuple[int, int]] = []
        self._buf = 0
        _ensure_tracefs()
        try:
            bpf_load.import_bcc()
        except ImportError:
            raise RecordError(
                "bcc's Python module is not importable: install python3-bpfcc and run bee "
                "from the system python3 (or a venv made with --system-site-packages)"
            ) from None
        self._perf_type = bpf_load.PERF_TYPE_SOFTWARE
        self._perf_config = bpf_load.PERF_COUNT_SW_CPU_CLOCK
        dwarf = uses_dwarf(opts)
        self._probe_fds: list[int] = []
        try:
            loaded = bpf_load.load(program_text(), map_sizes(opts), program_functions(opts),
                                   opts.bpf_cache, before_compile=_check_kernel_headers)
        except RecordError:
            raise
        except Exception as exc:  # bcc raises bare Exception on compile/load failure
            raise RecordError(f"cannot load the BPF program: {_one_line(exc)}") from None
        self.bpf: Any = loaded.bpf
        #: True when the program came from bee's cache (no clang); `bpf_note` says why not
        self.bpf_from_cache, self.bpf_note = loaded.from_cache, loaded.note
        self._configure(0)  # before anything is attached: bucket 0 until start()
        self.dwarf = dwarf
        self.unwind: UnwindLoader | None = None
        if dwarf:
            self._load_unwinders(opts)
        if opts.python:
            self._load_chains(opts, "Python walker", (("bee_pytail_{t}", 0, "bee_py_link_{t}"),
                                                      ("bee_pytail_{t}", 1, "bee_py_store_{t}")))
        self._counts = (self.bpf["counts0"], self.bpf["counts1"])
        self._stacks = (self.bpf["stacks0"], self.bpf["stacks1"])
        self._ustacks = (self.bpf["ustacks0"], self.bpf["ustacks1"]) if dwarf else None
        self._offustacks = self.bpf["offustacks"] if dwarf and opts.off_cpu else None
        self._offstacks = self.bpf["offstacks"] if opts.off_cpu else None
        self._offcache: dict[int, tuple[int, ...]] = {}
        self._offucache: dict[int, tuple[int, ...]] = {}
        self._active = self.bpf["active"]
        #: bucket 0 starts here: CLOCK_MONOTONIC (as bpf_ktime_get_ns) and wall-clock ns
        self.start_ns = self.start_wall_ns = 0
        self._targets = self.bpf["targets"]
        self._lost = self.bpf["lost"]
        self._py_stacks = (self.bpf["py_stacks0"], self.bpf["py_stacks1"]) if opts.python else None
        self._offpystacks = self.bpf["offpystacks"] if opts.python and opts.off_cpu else None
        self._offpycache: dict[int, tuple[tuple[int, int], ...]] = {}
        self._drains = self._readers()
        self._py_layout = PyStackLayout.of(self._py_stacks[0].Leaf) if self._py_stacks else None
        self.bpf["announce"].open_perf_buffer(
            self._on_announce, page_cnt=opts.perf_buffer_pages, lost_cb=self._on_lost
        )
        #: Code addresses of Python stacks newly stored in BPF, per pid, since the last
        #: `take_python_codes` (missed notices only delay the names to the next drain).
        self._py_new: dict[int, set[int]] = {}
        self.python_notices_lost = 0
        if opts.python:
            self.bpf["py_new"].open_perf_buffer(
                self._on_python_stack, page_cnt=opts.perf_buffer_pages,
                lost_cb=self._on_python_lost)

    def _readers(self) -> _Readers:
        """Batch readers of the maps every drain empties (their layouts checked)."""
        batch = bpf_load.lookup_and_delete_batch()
        key = self._counts[0].Key
        if ctypes.sizeof(key) != _KEY.size or key.bucket.offset != _BUCKET_AT:
            raise RecordError("bpf/profile.c's struct bee_key differs from the drain's layout")
        return _Readers(
            BatchDrain.for_table(self._counts[0], batch),
            BatchDrain.for_table(self._ustacks[0], batch) if self._ustacks else None,
            BatchDrain.for_table(self._py_stacks[0], batch) if self._py_stacks else None)

    def _load_chains(self, opts: SamplerOptions, what: str,
                     programs: tuple[tuple[str, int, str], ...]) -> None:
        """Load tail-called programs, per program type: (array, index, function) patterns."""
        try:
            for t in program_types(opts):
                for array_name, index, fn_name in programs:
                    fn = self.bpf.load_func(fn_name.format(t=t), _KINDS[t])
                    array = self.bpf[array_name.format(t=t)]
                    array[ctypes.c_int(index)] = ctypes.c_int(fn.fd)
        except Exception as exc:
            raise RecordError(f"cannot load the BPF {what}: {_one_line(exc)}") from None

    def _load_unwinders(self, opts: SamplerOptions) -> None:
        """Load the unwinder programs into their tail-call arrays; map the row table."""
        self._load_chains(opts, "unwinder", (("bee_tail_{t}", 0, "bee_unwind_{t}"),))
        self.unwind = UnwindLoader(self.bpf["urows"], self.bpf["umap_entries"],
                                   self.bpf["uprocs"], opts.unwind_rows)

    def add_target(self, pid: int) -> None:
        """Record this process (and, from now on, its children)."""
        self._targets[self._targets.Key(pid)] = self._targets.Leaf(1)

    def add_python(self, pid: int, generation: int, rt: PyRuntime) -> None:
        """Walk the Python frames of this process generation from now on."""
        if self._py_stacks is None:
            return
        table = self.bpf["py_procs"]
        table[table.Key(pid)] = python_proc(table.Leaf(), generation, rt)

    def start(self) -> None:
        """Attach event probes and the cpu-clock sampler on every CPU.

        The sched tracepoints of off-CPU mode are attached when the program loads. Time
        bucket 0 starts when everything is attached (attaching can take seconds: the
        kernel verifies each program then); counts before that land in bucket 0.
        """
        for i, probe in enumerate(self.opts.probes):
            fn = self.bpf.load_func(_event_function(probe), _KINDS[_event_kind(probe)])
            self._probe_fds.extend(attach(fn.fd, probe, i))
        if self.opts.on_cpu:
            try:
                self.bpf.attach_perf_event(
                    ev_type=self._perf_type, ev_config=self._perf_config,
                    fn_name=b"bee_on_cpu", sample_freq=self.opts.frequency,
                )
            except Exception as exc:
                raise RecordError(
                    f"cannot attach to cpu-clock perf events: {_one_line(exc)}") from None
        self.start_wall_ns, self.start_ns = time.time_ns(), time.monotonic_ns()
        self._configure(self.start_ns)

    def _configure(self, timebase: int) -> None:
        """Write the options the program reads at run time (bpf/profile.c's bee_config);
        the program counts nothing until this has run once."""
        table = self.bpf["config"]
        c = table.Leaf()
        o = self.opts
        c.timebase, c.resolution_ns = timebase, max(1, o.time_resolution_ns)
        c.cpu_weight, c.min_block_ns, c.max_block_ns = o.cpu_weight, o.min_block_ns, o.max_block_ns
        c.cgroup_id, c.cgroup_level = o.cgroup or (0, 0)
        c.flags = program_flags(o)
        table[table.Key(0)] = c

    def stop(self) -> None:
        """Stop sampling (the maps stay readable until close)."""
        with contextlib.suppress(Exception):  # already detached or never attached
            self.bpf.detach_perf_event(ev_type=self._perf_type, ev_config=self._perf_config)

    def poll(self, timeout_ms: int) -> list[tuple[int, int]]:
        """Wait up to `timeout_ms` for announcements of newly sampled process generations."""
        self.bpf.perf_buffer_poll(timeout=timeout_ms)
        out, self._announced = self._announced, []
        return out

    def drain(self, resolve: Callable[[RawCount], None]) -> None:
        """Flip buffers, then hand every count of the idle buffer to `resolve` and clear it."""
        old = self._buf
        self._buf = 1 - old
        self._active[self._active.Key(0)] = self._active.Leaf(self._buf)
        time.sleep(0.002)  # programs that read the old index finish within microseconds
        _, keys, values = self._drains.counts.drain(self._counts[old])
        # Keys that differ only by time bucket share everything else: resolve that once.
        groups: dict[tuple[bytes, bytes], list[tuple[int, int, int]]] = {}
        for (head, bucket, tail), (count, weight) in zip(
                _SPLIT.iter_unpack(keys), _VAL.iter_unpack(values), strict=True):
            rows = groups.get((head, tail))
            if rows is None:
                groups[head, tail] = [(bucket, count, weight)]
            else:
                rows.append((bucket, count, weight))
        stacks = self._stacks[old]
        cache: dict[int, tuple[int, ...]] = {}
        py = self._python_stacks(old)
        ucache = self._drain_ustacks(old)
        for (head, tail), rows in groups.items():
            pid, tid, cpu, gen, event, kstack, pystack = _HEAD.unpack(head)
            ustack, comm = _TAIL.unpack(tail)
            if event == 1 and self._offstacks is not None:
                table, seen = self._offstacks, self._offcache
            else:
                table, seen = stacks, cache
            user: tuple[int, ...] | int
            if self._ustacks is None:
                user = self._stack(table, ustack, seen)
            elif event == 1 and self._offustacks is not None:
                user = self._unwound(self._offustacks, ustack)
            else:
                user = ucache.get(ustack, LOST_STACK) if ustack >= 0 else (
                    NO_STACK if ustack == -1 else LOST_STACK)
            resolve(RawCount(
                pid, tid, cpu, gen, event, comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
                user, self._stack(table, kstack, seen), self._python_stack(event, pystack, py),
                rows))
        for sid in cache:
            with contextlib.suppress(KeyError):
                del stacks[stacks.Key(sid)]

    def _python_stacks(self, buf: int) -> dict[int, tuple[tuple[int, int], ...]]:
        """Read and clear the idle Python stack table: slot -> frames."""
        layout = self._py_layout
        if self._py_stacks is None or self._drains.py is None or layout is None:
            return {}
        return _drained(self._drains.py, self._py_stacks[buf], "<I", layout.frames)

    def _python_stack(self, event: int, slot: int, py: dict[int, tuple[tuple[int, int], ...]]
                      ) -> tuple[tuple[int, int], ...] | int:
        """The Python stack of a drained key: from this drain's table, or (off-CPU
        blocks) from `offpystacks`, which is never cleared (a block spans drains)."""
        if slot < 0:
            return NO_STACK if slot == -1 else LOST_STACK
        layout = self._py_layout
        if event != 1 or self._offpystacks is None or layout is None:
            return py.get(slot, LOST_STACK)
        return _kept(self._offpystacks, slot, self._offpycache,
                     lambda value: layout.frames(value, 0))

    def _drain_ustacks(self, buf: int) -> dict[int, tuple[int, ...]]:
        """Read and clear one buffer of unwound user stacks: key -> addresses."""
        if self._ustacks is None or self._drains.ustacks is None:
            return {}
        size = self._drains.ustacks.value_size
        return _drained(self._drains.ustacks, self._ustacks[buf], "<q",
                        lambda values, at: _unwound_addresses(values, at, size))

    def _unwound(self, table: Any, key: int) -> tuple[int, ...] | int:
        """An off-CPU unwound user stack (kept across drains: a block spans them)."""
        return _kept(table, key, self._offucache,
                     lambda value: _unwound_addresses(value, 0, len(value)))

    def lost(self) -> dict[str, int]:
        """Lost-data counters summed over CPUs."""
        out: dict[str, int] = {}
        for slot, name in enumerate(LOST_NAMES):
            out[name] = int(sum(self._lost[self._lost.Key(slot)]))
        if self._py_stacks is not None:
            py_lost = self.bpf["py_lost"]
            for slot, name in enumerate(PY_LOST_NAMES):
                out[name] = int(sum(py_lost[py_lost.Key(slot)]))
        out["announcements_lost"] = self._lost_announcements
        return out

    def close(self) -> None:
        """Detach and unload everything."""
        for fd in self._probe_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._probe_fds = []
        self.bpf.cleanup()

    @staticmethod
    def _stack(table: Any, sid: int, cache: dict[int, tuple[int, ...]]) -> tuple[int, ...] | int:
        """A kernel stack-trace map's stack (NO_STACK / LOST_STACK for negative ids)."""
        if sid == -1:
            return NO_STACK
        if sid < 0:
            return LOST_STACK
        got = cache.get(sid)
        if got is None:
            try:
                got = tuple(table.walk(sid))
            except KeyError:
                return LOST_STACK
            cache[sid] = got
        return got

    def _on_announce(self, cpu: int, data: Any, size: int) -> None:
        if size >= _ANNOUNCE.size:  # struct bee_announce: u32 pid, u32 gen
            self._announced.append(_ANNOUNCE.unpack(ctypes.string_at(data, _ANNOUNCE.size)))

    def _on_lost(self, count: int) -> None:
        self._lost_announcements += count

    def _on_python_stack(self, cpu: int, data: Any, size: int) -> None:
        pid, codes = python_notice(ctypes.string_at(data, size))
        if codes:
            self._py_new.setdefault(pid, set()).update(codes)

    def _on_python_lost(self, count: int) -> None:
        self.python_notices_lost += count

    def take_python_codes(self) -> dict[int, set[int]]:
        """Code addresses of the Python stacks stored since the last call, per pid."""
        out, self._py_new = self._py_new, {}
        return out


def python_notice(data: bytes) -> tuple[int, tuple[int, ...]]:
    """(pid, code addresses) of one `py_new` notice: len, pid (u32 each), then the codes."""
    if len(data) < 8:
        return 0, ()
    length, pid = struct.unpack_from("<II", data)
    n = min(length & 0x7FFFFFFF, (len(data) - 8) // 8)
    return pid, tuple(c for c in struct.unpack_from(f"<{n}Q", data, 8) if c)


def python_proc(leaf: Any, generation: int, rt: PyRuntime) -> Any:
    """Fill a `struct bee_py_proc` (bpf/python.c) for one process generation."""
    lay = rt.layout
    leaf.gen = generation
    leaf.model = min(lay.model, MODEL_CSTACK_SHIM)
    leaf.interp_head = rt.runtime + lay.runtime_interp_head
    leaf.interp_next = lay.interp_next
    leaf.threads_head = lay.interp_threads_head
    leaf.tstate_next = lay.tstate_next
    native = lay.tstate_native_thread_id >= 0
    leaf.tstate_tid = lay.tstate_native_thread_id if native else lay.tstate_thread_id
    leaf.pthread_tid = -1 if native else rt.pthread_tid
    leaf.tstate_frame = lay.tstate_frame
    leaf.cframe_current = lay.cframe_current_frame
    leaf.frame_previous = lay.frame_previous
    leaf.frame_code = lay.frame_code
    leaf.frame_instr = lay.frame_instr
    leaf.frame_owner = lay.frame_owner
    leaf.frame_is_entry = lay.frame_is_entry
    leaf.code_adaptive = lay.code_adaptive
    leaf.frame_read = 8 + max(lay.frame_previous, lay.frame_code, lay.frame_instr,
                              lay.frame_owner, lay.frame_is_entry)
    return leaf


@dataclass(frozen=True, slots=True)
class PyStackLayout:
    """Where the fields of a `struct bee_py_stack` (bpf/python.c) lie in its bytes."""

    code_at: int
    info_at: int
    slots: int

    @classmethod
    def of(cls, leaf: Any) -> PyStackLayout:
        """The layout of bcc's ctypes type for the struct."""
        return cls(leaf.code.offset, leaf.info.offset, leaf.code.size // 8)

    def frames(self, data: bytes, at: int) -> tuple[tuple[int, int], ...]:
        """The frames of the struct at `at`; a last (0, 0) marks a cut stack."""
        length = int.from_bytes(data[at:at + 4], "little")
        n = min(length & 0x7FFFFFFF, self.slots)
        codes = struct.unpack_from(f"<{n}Q", data, at + self.code_at)
        infos = struct.unpack_from(f"<{n}I", data, at + self.info_at)
        frames = tuple(zip(codes, infos, strict=True))
        return (*frames, (0, 0)) if length & 0x80000000 else frames


def _drained(reader: BatchDrain, table: Any, key_format: str,
             decode: Callable[[bytes, int], _T]) -> dict[int, _T]:
    """Read and clear a map of stacks with its batch reader: key -> the value decoded
    (`decode(values, offset)`)."""
    _, keys, values = reader.drain(table)
    size = reader.value_size
    return {key: decode(values, i * size)
            for i, (key,) in enumerate(struct.iter_unpack(key_format, keys))}


def _kept(table: Any, key: int, cache: dict[int, _T], decode: Callable[[bytes], _T]
          ) -> _T | int:
    """A stack of a map never cleared during the recording (off-CPU: a block spans
    drains), read and decoded once; NO_STACK / LOST_STACK for negative or missing keys."""
    if key < 0:
        return NO_STACK if key == -1 else LOST_STACK
    got = cache.get(key)
    if got is None:
        try:
            value = bytes(table[table.Key(key)])
        except KeyError:
            return LOST_STACK
        got = cache[key] = decode(value)
    return got


def _unwound_addresses(data: bytes, at: int, size: int) -> tuple[int, ...]:
    """The addresses of a `struct bee_ustack` (bpf/unwind.c: len, flags, addrs[])."""
    n = min(int.from_bytes(data[at:at + 4], "little"), (size - 8) // 8)
    return struct.unpack_from(f"<{n}Q", data, at + 8)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


__all__ = ["LOST_HINTS", "RawCount", "Sampler", "SamplerOptions", "check_privileges"]

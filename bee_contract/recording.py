"""The recording model: what `bee record` writes and `bee report` reads.

These frozen dataclasses are the contract between the two stages. They hold raw data
only (instruction addresses, memory maps, build-ids, the kernel symbols needed), never
symbol names of user code. `bee_contract.codec` turns them into the versioned msgpack file
described in `formats/recording-v2.md`; nothing here imports bcc or any report code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

#: Stack index meaning "no stack of this kind" (a kernel thread has no user stack;
#: a `--user-only` recording has no kernel stacks).
NO_STACK = -1
#: Stack index meaning "the kernel failed to collect this stack" (counted in `lost`).
LOST_STACK = -2

#: The last address of a user stack the unwinder could not finish (ran out of frames,
#: found no rule, or could not read the stack before reaching the outermost frame).
#: No user address can take this value; the report prints it as `[truncated]`.
TRUNCATED_FRAME = 0xFFFFFFFFFFFFFFFF



class Unwinder(StrEnum):
    """How user stacks were unwound (Header.unwinder; `bee record --unwind`)."""

    DWARF = "dwarf"  # .eh_frame tables in BPF: complete without frame pointers
    FP = "fp"  # frame pointers only: cheaper

    @property
    def description(self) -> str:
        """What the unwinder follows, for people."""
        return "frame pointers" if self is Unwinder.FP else ".eh_frame tables"


#: Units a sample weight can have.
WEIGHT_UNITS = ("samples", "nanoseconds", "events")


@dataclass(frozen=True, slots=True)
class Mapping:
    """One executable file-backed (or special, e.g. `[vdso]`) mapping of a process."""

    start: int
    end: int
    offset: int  # file offset of `start`
    dev: int  # st_dev as os.makedev(major, minor)
    inode: int
    path: str
    binary: int  # index into Recording.binaries, or -1 when the file could not be read


@dataclass(frozen=True, slots=True)
class Binary:
    """A mapped ELF file as seen on the target."""

    path: str
    build_id: str | None  # lowercase hex of NT_GNU_BUILD_ID, None when it has none
    size: int  # file size in bytes on the target (0 when unknown)


@dataclass(frozen=True, slots=True)
class JitSymbol:
    """One entry of a perf map (`/tmp/perf-PID.map`) that covers sampled addresses."""

    start: int
    size: int
    name: str


@dataclass(frozen=True, slots=True)
class PythonCode:
    """A CPython code object seen in Python stacks, read from the live process."""

    address: int  # where it was in the process (several entries can share one address)
    qualname: str  # co_qualname (3.11+) or co_name (3.10); "" when it could not be read
    filename: str  # co_filename
    firstlineno: int  # co_firstlineno
    linetable: bytes  # co_linetable as stored (format of the version), possibly capped


@dataclass(frozen=True, slots=True)
class PythonInfo:
    """The CPython runtime of a process and the code objects its Python stacks use."""

    version: int  # PY_VERSION_HEX of the interpreter (0x030a0000 when only 3.10 is known)
    codes: tuple[PythonCode, ...]


#: In a Python stack, the code index meaning "more (outer) frames were not recorded".
PY_TRUNCATED = -1
#: Flag in a Python frame's `info`: the first frame of a _PyEval_EvalFrameDefault call.
PY_ENTRY = 0x80000000


@dataclass(frozen=True, slots=True)
class Process:
    """A process (one exec generation of a pid) as first seen during the recording."""

    pid: int
    generation: int  # 0 at first sight, +1 on every exec seen during the recording
    ns_pid: int  # pid inside its own pid namespace (== pid outside containers)
    ppid: int
    comm: str
    exe: str
    cmdline: tuple[str, ...] | None  # None when omitted (--no-cmdline) or unreadable
    maps: tuple[Mapping, ...]
    jit: tuple[JitSymbol, ...] = ()
    python: PythonInfo | None = None  # CPython processes with Python stacks


@dataclass(frozen=True, slots=True)
class Sample:
    """Aggregated samples with the same process, thread, CPU and stacks."""

    process: int  # index into Recording.processes
    tid: int
    cpu: int
    comm: str  # thread name when sampled
    user_stack: int  # index into Recording.stacks, NO_STACK or LOST_STACK
    kernel_stack: int  # index into Recording.stacks, NO_STACK or LOST_STACK
    count: int  # number of events
    weight: int  # in Header.weight_unit; equals count for on-CPU sampling
    event: int = 0  # index into Header.events
    python_stack: int = NO_STACK  # index into Recording.python_stacks, NO_STACK or LOST_STACK
    bucket: int = 0  # taken in [start + bucket*res, +res) with res = Header.time_resolution_ns


@dataclass(frozen=True, slots=True)
class KernelSymbol:
    """A kallsyms entry needed to name sampled kernel addresses."""

    address: int
    name: str
    module: str  # "" for the core kernel, else the module name from kallsyms


@dataclass(frozen=True, slots=True)
class KernelInfo:
    """The target's kernel: its release, build-id and the needed kallsyms entries."""

    release: str
    build_id: str | None
    symbols: tuple[KernelSymbol, ...]  # sorted by address
    vdso: bytes = b""  # the 64-bit vDSO image, when sampled addresses fall in [vdso]


@dataclass(frozen=True, slots=True)
class Header:
    """What, where, when and how the recording was made."""

    host: str
    kernel_release: str
    arch: str
    start_time_ns: int  # wall clock (Unix epoch) at start
    duration_ns: int
    frequency_hz: int  # sampling frequency; 0 for event-driven modes
    mode: str  # "cpu", "offcpu", "wall", "event"
    weight_unit: str  # one of WEIGHT_UNITS
    events: tuple[str, ...]  # e.g. ("cpu-clock",), ("sched:sched_switch",)
    target: str  # human description: "system", "pid 42,43", "command ./app"
    bee_version: str
    argv: tuple[str, ...] = ()  # the bee record command line (empty with --no-cmdline)
    sequence: int = 0  # position in a --rotate series (0 when not rotating)
    unwinder: str = ""  # "fp" (frame pointers) or "dwarf" (.eh_frame tables); "" unknown
    #: width of the samples' time buckets; 0: one bucket spanning the recording (v1 files)
    time_resolution_ns: int = 0

    def bucket_span(self, bucket: int) -> tuple[int, int]:
        """Wall-clock [start, end) in Unix epoch ns of the samples of time bucket `bucket`."""
        if not self.time_resolution_ns:
            return self.start_time_ns, self.start_time_ns + self.duration_ns
        start = self.start_time_ns + bucket * self.time_resolution_ns
        return start, start + self.time_resolution_ns


@dataclass(frozen=True, slots=True)
class Recording:
    """One complete recording. Indices between tables are validated by the codec."""

    header: Header
    binaries: tuple[Binary, ...]
    processes: tuple[Process, ...]
    stacks: tuple[tuple[int, ...], ...]  # instruction addresses, leaf (innermost) first
    samples: tuple[Sample, ...]
    kernel: KernelInfo
    lost: dict[str, int] = field(default_factory=dict)
    #: Python stacks, leaf first: (code, info) pairs, `code` an index into the sampling
    #: process's `python.codes` (PY_TRUNCATED last when outer frames were cut), `info` the
    #: instruction index in code units, with PY_ENTRY on each eval call's first frame.
    python_stacks: tuple[tuple[tuple[int, int], ...], ...] = ()

    @property
    def total_samples(self) -> int:
        """Number of events (samples) recorded, lost ones excluded."""
        return sum(s.count for s in self.samples)

    @property
    def total_lost(self) -> int:
        """Sum of every lost-data counter."""
        return sum(self.lost.values())


def is_anonymous(path: str) -> bool:
    """True for mappings without a file (where JIT compilers put code)."""
    return not path or path.startswith("[anon")

"""Event probes for `bee record -e`: a stack is counted at each hit of the probe.

Specs: `tracepoint:CATEGORY:NAME`, `uprobe:PATH:SYMBOL`, `uretprobe:PATH:SYMBOL`,
`kprobe:FUNCTION`. Kprobes need a kernel built with CONFIG_KPROBES; without it, a clear
one-line error suggests a tracepoint instead.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
from dataclasses import dataclass

from bee_contract.errors import RecordError
from bee_record import bpf_load

MAX_PROBES = 8
KINDS = ("tracepoint", "uprobe", "uretprobe", "kprobe")
_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
_TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


@dataclass(frozen=True, slots=True)
class Probe:
    """One parsed `-e` event."""

    kind: str
    target: str  # tracepoint category, binary path, or kernel function
    name: str  # tracepoint name or symbol ("" for kprobes)

    @property
    def event_name(self) -> str:
        """The name stored in the recording's header.events."""
        if self.kind == "kprobe":
            return f"kprobe:{self.target}"
        return f"{self.kind}:{self.target}:{self.name}"


def parse(spec: str) -> Probe:
    """Parse one `-e` spec; raise RecordError naming what is wrong."""
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise RecordError(f"-e {spec}: unknown event kind '{kind}'; use one of "
                          f"{', '.join(k + ':' for k in KINDS)}")
    if kind == "kprobe":
        if not _NAME.match(rest):
            raise RecordError(f"-e {spec}: expected kprobe:FUNCTION")
        return Probe(kind, rest, "")
    target, _, name = rest.rpartition(":")
    if not target or not name:
        what = "CATEGORY:NAME" if kind == "tracepoint" else "PATH:SYMBOL"
        raise RecordError(f"-e {spec}: expected {kind}:{what}")
    if kind == "tracepoint" and not (_NAME.match(target) and _NAME.match(name)):
        raise RecordError(f"-e {spec}: invalid tracepoint name")
    return Probe(kind, target, name)


def check(probe: Probe) -> None:
    """Fail early, with one line, when a probe cannot work on this machine."""
    if probe.kind == "kprobe":
        if not any(os.path.exists(f"{t}/kprobe_events") for t in _TRACEFS):
            raise RecordError(
                f"kprobe:{probe.target}: this kernel has no kprobes (CONFIG_KPROBES is off); "
                "use a tracepoint instead, e.g. -e tracepoint:syscalls:sys_enter_write"
            )
    elif probe.kind == "tracepoint":
        if not any(os.path.isdir(f"{t}/events/{probe.target}/{probe.name}") for t in _TRACEFS):
            raise RecordError(f"tracepoint:{probe.target}:{probe.name}: no such tracepoint")
    elif "/" in probe.target and not os.path.exists(probe.target):
        raise RecordError(f"{probe.kind}:{probe.target}: no such file")


def attach(prog_fd: int, probe: Probe, cookie: int) -> tuple[int, int]:
    """Attach a loaded program to the probe, `cookie` (the probe's index) being what the
    program reads with bpf_get_attach_cookie: (the perf event's descriptor, the link's).
    Closing both detaches it."""
    path = b""
    try:
        if probe.kind == "tracepoint":
            ev_type, config, config1, config2 = _TRACEPOINT, _tracepoint_id(probe), 0, 0
        elif probe.kind == "kprobe":
            ev_type, config = _pmu_type("kprobe"), 0
            path = probe.target.encode()
            config1, config2 = 0, 0
        else:
            module, offset = bpf_load.uprobe_offset(probe.target, probe.name)
            ev_type = _pmu_type("uprobe")
            config = 1 << _retprobe_bit() if probe.kind == "uretprobe" else 0
            path, config1, config2 = module.encode(), 0, offset
        buf = ctypes.create_string_buffer(path)
        if path:
            config1 = ctypes.addressof(buf)
        perf_fd = _perf_event_open(ev_type, config, config1, config2)
    except (OSError, ValueError) as exc:
        raise RecordError(f"cannot attach {probe.event_name}: "
                          f"{exc.strerror if isinstance(exc, OSError) else exc}") from None
    try:
        link_fd = bpf_load.link_perf_event(prog_fd, perf_fd, cookie)
    except OSError as exc:
        os.close(perf_fd)
        raise RecordError(f"cannot attach {probe.event_name}: {exc.strerror}") from None
    return perf_fd, link_fd


_TRACEPOINT = 2  # PERF_TYPE_TRACEPOINT
_PERF_FLAG_FD_CLOEXEC = 8
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319,
                        "s390x": 331}.get(os.uname().machine)
#: struct perf_event_attr up to config2 (PERF_ATTR_SIZE_VER1): type, size, config,
#: sample_period, sample_type, read_format, flag bits, wakeup_events, bp_type, config1,
#: config2.
_PERF_ATTR = struct.Struct("<IIQQQQQIIQQ")
_PMUS = "/sys/bus/event_source/devices"


def _perf_event_open(ev_type: int, config: int, config1: int, config2: int) -> int:
    """A perf event of every process on every CPU (for trace events, pid -1 on CPU 0
    runs the attached program wherever the event fires), enabled."""
    if _SYS_PERF_EVENT_OPEN is None:
        raise OSError(38, os.strerror(38))
    attr = ctypes.create_string_buffer(_PERF_ATTR.size)
    _PERF_ATTR.pack_into(attr, 0, ev_type, _PERF_ATTR.size, config, 1, 0, 0, 0, 1, 0,
                         config1, config2)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.syscall(_SYS_PERF_EVENT_OPEN, attr, -1, 0, -1, _PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def _tracepoint_id(probe: Probe) -> int:
    for tracefs in _TRACEFS:
        try:
            with open(f"{tracefs}/events/{probe.target}/{probe.name}/id") as f:
                return int(f.read())
        except (OSError, ValueError):
            continue
    raise ValueError("no such tracepoint")


def _pmu_type(pmu: str) -> int:
    try:
        with open(f"{_PMUS}/{pmu}/type") as f:
            return int(f.read())
    except (OSError, ValueError):
        raise ValueError(f"this kernel has no {pmu} perf events") from None


def _retprobe_bit() -> int:
    """The bit of the uprobe PMU's config that makes a return probe ("config:0")."""
    try:
        with open(f"{_PMUS}/uprobe/format/retprobe") as f:
            return int(f.read().strip().partition(":")[2])
    except (OSError, ValueError):
        raise ValueError("this kernel has no return uprobes") from None

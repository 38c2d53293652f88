"""Event probes for `bee record -e`: a stack is counted at each hit of the probe.

Specs: `tracepoint:CATEGORY:NAME`, `uprobe:PATH:SYMBOL`, `uretprobe:PATH:SYMBOL`,
`kprobe:FUNCTION`. Kprobes need a kernel built with CONFIG_KPROBES; without it, a clear
one-line error suggests a tracepoint instead.
"""

from __future__ import annotations

import ctypes
import os
import re
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
    try:
        if probe.kind == "tracepoint":
            perf_fd = bpf_load.open_perf_event(_TRACEPOINT, _tracepoint_id(probe))
        else:
            # kprobe and uprobe PMUs: config1 points at the function or binary's name,
            # config2 is the offset in the binary
            if probe.kind == "kprobe":
                pmu, config, name, offset = "kprobe", 0, probe.target, 0
            else:
                pmu = "uprobe"
                config = 1 << _retprobe_bit() if probe.kind == "uretprobe" else 0
                name, offset = bpf_load.uprobe_offset(probe.target, probe.name)
            buf = ctypes.create_string_buffer(name.encode())
            perf_fd = bpf_load.open_perf_event(_pmu_type(pmu), config, ctypes.addressof(buf),
                                               offset)
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
_PMUS = "/sys/bus/event_source/devices"


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

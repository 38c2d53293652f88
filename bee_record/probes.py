"""Event probes for `bee record -e`: a stack is counted at each hit of the probe.

Specs: `tracepoint:CATEGORY:NAME`, `uprobe:PATH:SYMBOL`, `uretprobe:PATH:SYMBOL`,
`kprobe:FUNCTION`. Kprobes need a kernel built with CONFIG_KPROBES; without it, a clear
one-line error suggests a tracepoint instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from bee_contract.errors import RecordError

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


def attach(bpf: Any, probe: Probe, fn_name: str) -> None:
    """Attach `fn_name` of a loaded bcc BPF object to the probe."""
    try:
        if probe.kind == "tracepoint":
            bpf.attach_tracepoint(tp=f"{probe.target}:{probe.name}", fn_name=fn_name)
        elif probe.kind == "uprobe":
            bpf.attach_uprobe(name=probe.target, sym=probe.name, fn_name=fn_name)
        elif probe.kind == "uretprobe":
            bpf.attach_uretprobe(name=probe.target, sym=probe.name, fn_name=fn_name)
        else:
            bpf.attach_kprobe(event=probe.target, fn_name=fn_name)
    except Exception as exc:  # bcc raises bare Exception
        text = str(exc).strip().splitlines()
        raise RecordError(f"cannot attach {probe.event_name}: "
                          f"{text[-1] if text else type(exc).__name__}") from None

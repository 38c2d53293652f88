"""speedscope's JSON file format (https://www.speedscope.app/file-format-schema.json).

One "sampled" profile per process (or per thread with ``per_thread``), all sharing one
de-duplicated frame table. Frame names carry the same kind markers as the top table so
that kernel, JIT and inlined code stays distinguishable in speedscope's views (which have
no notion of frame kinds):

* kernel frames: ``name [k]``
* JIT frames: ``name [jit]``
* inlined frames: ``name [inlined]``
* user and synthetic frames: the name as is

A frame's ``file`` is its source file when known, otherwise the binary it is in (the
module, e.g. ``libc.so.6`` or ``[kernel.kallsyms]``), as speedscope's own perf importer
does. ``line`` is written only with ``lines=True``: speedscope identifies a function by
its frame entry, so per-call-site lines would split one function into many rows of the
sandwich view.

The output is deterministic: profiles sorted by pid (and tid), identical stacks merged and
sorted by their frames, frames numbered in order of first use. Samples of zero or
negative weight are left out (speedscope rejects negative weights); a sample without
frames is shown as one ``[unknown]`` frame so that totals still add up.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass

from bee_report.profile import Frame, Profile, StackSample, grouped
from bee_report.reporters.options import RenderOptions

SCHEMA = "https://www.speedscope.app/file-format-schema.json"

UNKNOWN_FRAME = Frame("[unknown]")

# One entry of shared.frames: (name, file, line).
_FrameKey = tuple[str, str | None, int | None]


@dataclass(frozen=True, slots=True, order=True)
class _ProfileKey:
    """Which speedscope profile a sample goes to: (pid, comm) or, per thread, (pid, tid)."""

    pid: int
    tid: int  # -1 when grouping by process
    comm: str  # "" when grouping by thread (the title then uses the heaviest names)


@dataclass(slots=True)
class _Group:
    """The stacks of one speedscope profile and the names its samples carried."""

    stacks: defaultdict[tuple[_FrameKey, ...], int]
    names: Counter[tuple[str, str]]  # (comm, thread name) -> weight

    def title(self, key: _ProfileKey) -> str:
        # Heaviest name first; ties broken by the name, for determinism.
        comm, thread = min(self.names.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        comm = comm or "[unknown]"
        if key.tid < 0:
            return f"{comm} (pid {key.pid})"
        who = comm if not thread or thread == comm else f"{comm}/{thread}"
        return f"{who} (pid {key.pid}, tid {key.tid})"


def frame_key(frame: Frame, lines: bool = False) -> _FrameKey:
    """The (name, file, line) speedscope shows for a frame."""
    name = frame.name + frame.kind.label
    file = frame.file or frame.module or None
    line = frame.line if lines and frame.file and frame.line else None
    return (name, file, line)


def _group(profile: Profile, per_thread: bool, lines: bool) -> dict[_ProfileKey, _Group]:
    """Weights per stack (of frame keys, root first) per profile.

    A process whose name changes (exec) becomes one profile per name; a thread that
    renames itself stays one profile, titled with the name that carries most weight.
    """
    groups: dict[_ProfileKey, _Group] = {}

    def profile_key(s: StackSample) -> _ProfileKey:
        return _ProfileKey(s.pid, s.tid, "") if per_thread else _ProfileKey(s.pid, -1, s.comm)

    positive = [s for s in profile if s.weight > 0]
    for s in positive:
        key = profile_key(s)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(defaultdict(int), Counter())
        group.names[(s.comm, s.thread if per_thread else "")] += s.weight
    for s, weight, _ in grouped(positive, profile_key):  # frame keys once per stack
        stack = tuple(frame_key(f, lines) for f in s.frames or (UNKNOWN_FRAME,))
        groups[profile_key(s)].stacks[stack] += weight
    return groups


def _sort_key(stack: tuple[_FrameKey, ...]) -> tuple[tuple[str, str, int], ...]:
    return tuple((n, f or "", ln or 0) for n, f, ln in stack)


def to_dict(profile: Profile, per_thread: bool = False, name: str = "bee",
            lines: bool = False) -> dict[str, object]:
    """The speedscope file as JSON-ready Python objects."""
    unit = "nanoseconds" if profile.unit == "nanoseconds" else "none"
    groups = _group(profile, per_thread, lines)
    index: dict[_FrameKey, int] = {}
    frames: list[dict[str, object]] = []

    def frame_index(key: _FrameKey) -> int:
        i = index.get(key)
        if i is None:
            i = index[key] = len(frames)
            fname, file, line = key
            entry: dict[str, object] = {"name": fname}
            if file is not None:
                entry["file"] = file
            if line is not None:
                entry["line"] = line
            frames.append(entry)
        return i

    profiles: list[dict[str, object]] = []
    for key in sorted(groups):
        stacks = groups[key].stacks
        samples: list[list[int]] = []
        weights: list[int] = []
        for stack in sorted(stacks, key=_sort_key):
            samples.append([frame_index(k) for k in stack])
            weights.append(stacks[stack])
        profiles.append({
            "type": "sampled",
            "name": groups[key].title(key),
            "unit": unit,
            "startValue": 0,
            "endValue": sum(weights),
            "samples": samples,
            "weights": weights,
        })
    return {
        "$schema": SCHEMA,
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": name,
        "activeProfileIndex": 0,
        "exporter": "bee",
    }


def render(profile: Profile, per_thread: bool = False, name: str = "bee",
           lines: bool = False) -> str:
    """The speedscope JSON text of a profile (ASCII only: non-ASCII names are escaped)."""
    return json.dumps(to_dict(profile, per_thread, name, lines),
                      separators=(",", ":"), ensure_ascii=True) + "\n"


class SpeedscopeReporter:
    """`--format speedscope`: speedscope's JSON, one profile per process or thread."""

    name = "speedscope"
    binary = False
    options = ("per_thread", "lines")

    def render(self, profile: Profile, options: RenderOptions) -> str:
        """The speedscope JSON of a profile."""
        return render(profile, per_thread=options.per_thread, lines=options.lines)


REPORTER = SpeedscopeReporter()

"""Symbolized stacks: the in-memory intermediate every reporter draws from.

`bee_report.symbolize` turns recordings into a Profile; reporters (folded, top, svg,
diff, exports) read only this model, never msgpack. Frames are root first.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameKind(StrEnum):
    """What kind of code a frame is in; reporters colour and mark frames by it."""

    USER = "user"
    KERNEL = "kernel"
    JIT = "jit"
    INLINED = "inlined"
    PYTHON = "python"  # a CPython function (bee_report.python)
    ROOT = "root"  # synthetic grouping frames: process, thread, cpu

    @property
    def suffix(self) -> str:
        """Its suffix in folded stacks, as flamegraph.pl and bcc write it ("" if none)."""
        return _MARKS[self][0]

    @property
    def label(self) -> str:
        """Its marker after a name in tables and speedscope, e.g. " [k]" ("" if none)."""
        return _MARKS[self][1]

    @property
    def tag(self) -> str:
        """Its marker in flame graph tooltips, e.g. " [kernel]" ("" if none)."""
        return _MARKS[self][2]

    @classmethod
    def split_folded(cls, name: str) -> tuple[str, FrameKind | None]:
        """A folded element's name without its kind suffix, and that kind (None if none).

        >>> FrameKind.split_folded("do_syscall_64_[k]")
        ('do_syscall_64', <FrameKind.KERNEL: 'kernel'>)
        """
        if name.endswith("]"):
            cut = name.rfind("_[")
            if cut > 0:  # a name that is only a suffix keeps it
                kind = _BY_SUFFIX.get(name[cut:])
                if kind is not None:
                    return name[:cut], kind
        return name, None


#: (folded suffix, label, tooltip tag) of each kind: the one table of frame-kind markers.
_MARKS = {
    FrameKind.USER: ("", "", ""),
    FrameKind.KERNEL: ("_[k]", " [k]", " [kernel]"),
    FrameKind.JIT: ("_[j]", " [jit]", " [jit]"),
    FrameKind.INLINED: ("_[i]", " [inlined]", " [inlined]"),
    FrameKind.PYTHON: ("_[py]", " [py]", ""),
    FrameKind.ROOT: ("", "", ""),
}
_BY_SUFFIX = {marks[0]: kind for kind, marks in _MARKS.items() if marks[0]}


def folded_name(name: str) -> str:
    """A name made safe for one folded element: no `;`, no line breaks."""
    name = name.replace(";", ":")
    if not name.isprintable():
        name = "".join(c if c.isprintable() else " " for c in name)
    return name


def python_name(qualname: str, filename: str, line: int | None) -> str:
    """`qualname (file.py:line)`: how a Python frame is named."""
    base = filename.rsplit("/", 1)[-1] or filename
    return f"{qualname} ({base}:{line if line is not None else '?'})"


@dataclass(frozen=True, slots=True)
class Frame:
    """One symbolized frame."""

    name: str
    kind: FrameKind = FrameKind.USER
    module: str = ""  # basename of the binary ("[kernel.kallsyms]" for the kernel)
    file: str | None = None
    line: int | None = None
    address: int = 0  # runtime address (0 for synthetic frames)
    path: str = ""  # full path of the binary on the target ("" when not a file)
    build_id: str | None = None  # build-id of that binary, when recorded

    def folded(self, lines: bool = False) -> str:
        """The frame as it appears in folded stacks (with its kind suffix)."""
        name = self.name
        if lines and self.kind is FrameKind.PYTHON and self.file is not None:
            name = python_name(self.name.rsplit(" (", 1)[0], self.file, self.line)
        elif lines and self.file is not None:
            name = f"{name} [{self.file}:{self.line or 0}]"
        return folded_name(name) + self.kind.suffix


@dataclass(frozen=True, slots=True)
class StackSample:
    """Weighted samples of one symbolized stack in one thread."""

    frames: tuple[Frame, ...]  # root first: outermost user frame ... innermost kernel frame
    weight: int
    count: int
    pid: int
    tid: int
    cpu: int
    comm: str  # process name
    thread: str  # thread name
    event: str = "cpu-clock"
    time_ns: int = 0  # start of the time bucket the samples were taken in (Unix epoch ns)
    span_ns: int = 0  # width of that bucket (a whole recording for format v1 files)


@dataclass
class Profile:
    """All samples of one or more recordings, symbolized."""

    samples: list[StackSample] = field(default_factory=list)
    unit: str = "samples"
    sources: list[str] = field(default_factory=list)
    lost: int = 0
    frequency_hz: int = 0  # sampling frequency (0 when mixed or event-driven)
    start_time_ns: int = 0  # earliest recording start (Unix epoch ns)
    duration_ns: int = 0  # sum of the recordings' durations
    end_time_ns: int = 0  # latest recording end (Unix epoch ns)
    #: sources without time buckets (format v1) -> (start_time_ns, duration_ns): their
    #: samples' time_ns and span_ns
    untimed: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: the --from/--to window [from, to) in Unix epoch ns these samples were kept by
    window: tuple[int, int] | None = None

    @property
    def total(self) -> int:
        """Sum of the weights of all samples."""
        return sum(s.weight for s in self.samples)

    @property
    def stack_count(self) -> int:
        """Distinct stacks per thread and CPU (samples of one stack in several time buckets
        count once)."""
        return len({(s.frames, s.pid, s.tid, s.cpu, s.thread, s.event) for s in self.samples})

    def filtered(self, keep: Iterable[StackSample]) -> Profile:
        """A profile with the same metadata and only the given samples."""
        return Profile(list(keep), self.unit, list(self.sources), self.lost,
                       self.frequency_hz, self.start_time_ns, self.duration_ns,
                       self.end_time_ns, dict(self.untimed), self.window)

    def __iter__(self) -> Iterator[StackSample]:
        return iter(self.samples)


class PerStack(Generic[T]):
    """``fn(frames)`` computed once per distinct stack.

    The symbolizer gives every sample of one stack the same ``frames`` tuple, so the memo
    is keyed by the tuple's identity (it keeps the tuple alive, so the identity stays
    unique) and never hashes or walks a long stack once per sample.
    """

    def __init__(self, fn: Callable[[tuple[Frame, ...]], T]) -> None:
        self._fn = fn
        self._memo: dict[int, tuple[tuple[Frame, ...], T]] = {}

    def __call__(self, frames: tuple[Frame, ...]) -> T:
        """``fn(frames)``, from the memo after the first call with this tuple."""
        hit = self._memo.get(id(frames))
        if hit is None:
            hit = self._memo[id(frames)] = (frames, self._fn(frames))
        return hit[1]


def grouped(samples: Iterable[StackSample],
            key: Callable[[StackSample], Hashable] = lambda s: None,
            ) -> list[tuple[StackSample, int, int]]:
    """Samples merged per distinct stack (by identity, see :class:`PerStack`) and ``key``:
    (one sample of the group, summed weight, summed count), in order of first sight."""
    groups: dict[tuple[int, Hashable], list[object]] = {}
    for s in samples:
        k = (id(s.frames), key(s))
        g = groups.get(k)
        if g is None:
            groups[k] = [s, s.weight, s.count]
        else:
            g[1] += s.weight  # type: ignore[operator]
            g[2] += s.count  # type: ignore[operator]
    return [(g[0], g[1], g[2]) for g in groups.values()]  # type: ignore[misc]

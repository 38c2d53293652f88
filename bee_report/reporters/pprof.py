"""pprof's gzipped ``profile.proto`` (github.com/google/pprof/proto/profile.proto).

Written by a small protobuf encoder of its own (varints and length-delimited fields), so
bee needs no protobuf package at run time. The output is deterministic: samples sorted,
ids and string-table entries numbered in order of first use, gzip mtime 0.

What goes where:

* ``sample_type``: for ``unit == "samples"``, ``samples/count`` (the weight), plus
  ``cpu/nanoseconds`` (weight x period) when ``period_ns`` is known; for
  ``unit == "nanoseconds"``, ``samples/count`` (StackSample.count) and then
  ``off-cpu/nanoseconds`` (the weight; the name can be changed with ``weight_type``).
  The last type is the default pprof shows.
* samples: location ids leaf first; labels ``pid``, ``tid``, ``cpu`` (numeric) and
  ``comm``, ``thread`` (strings), plus ``event`` when the profile has several events.
  Identical stacks with identical labels are merged. (pprof's reader ignores numeric
  labels whose value is 0 and string labels that are empty: pid/cpu 0 go unlabelled.)
* mappings: one per binary (``Frame.module``). The full path and build-id come from the
  frame's ``path``/``build_id`` attributes when it has them, else from ``binaries`` when a
  recorded binary has that basename unambiguously. Address ranges are unknown (0) since a
  profile merges processes. Frames are symbolized already, so every mapping says
  ``has_functions`` and pprof does not re-symbolize.
* locations: one per (binary, address, inline chain). A run of INLINED frames and the
  frame they are inlined into (root-first: the outer frame, then the inlined ones, all at
  the same address) becomes one location whose ``line`` entries list the innermost
  function first, as pprof expects.
* functions: name and system_name are the symbolized name (bee keeps no mangled names),
  filename the source file when known. Names carry no kind suffix: the mapping
  (``[kernel.kallsyms]``, ``[jit]``) tells the kind.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from collections.abc import Iterable, Sequence

from bee_report.diag import warn
from bee_report.profile import Frame, FrameKind, PerStack, Profile, StackSample
from bee_report.reporters.options import RenderOptions

# --- the protobuf wire format --------------------------------------------------------------

_VARINT = 0
_LEN = 2


_SMALL = [bytes((i,)) for i in range(0x80)]
INT64_MAX = (1 << 63) - 1
"""The largest sample value, time or duration profile.proto can hold (int64 fields)."""


def varint(value: int) -> bytes:
    """A base-128 varint; negative values as 64-bit two's complement (int64)."""
    if 0 <= value < 0x80:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Message:
    """A protobuf message being written; proto3 defaults (0, empty) are left out."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def num(self, field: int, value: int) -> Message:
        """An int64/uint64/bool field (varint)."""
        if value:
            self.buf += varint(field << 3 | _VARINT) + varint(value)
        return self

    def raw(self, field: int, value: bytes, always: bool = False) -> Message:
        """A length-delimited field (string, bytes or embedded message)."""
        if value or always:
            self.buf += varint(field << 3 | _LEN) + varint(len(value)) + value
        return self

    def packed(self, field: int, values: Iterable[int]) -> Message:
        """A packed repeated varint field."""
        body = b"".join(varint(v) for v in values)
        return self.raw(field, body)

    def message(self, field: int, value: Message) -> Message:
        """An embedded message (written even when empty, so that repeated ones count)."""
        return self.raw(field, bytes(value.buf), always=True)


# --- building the profile -----------------------------------------------------------------

_Line = tuple[int, int]  # (function id, line)


class _Builder:
    """Interns strings, functions, mappings and locations, numbering them from 1."""

    def __init__(self, binaries: Sequence[tuple[str, str | None]]) -> None:
        self.strings: dict[str, int] = {"": 0}
        self.functions: dict[tuple[int, int, int], int] = {}
        self.mappings: dict[tuple[str, str], int] = {}
        self.mapping_flags: dict[int, list[bool]] = {}
        self.locations: dict[tuple[int, int, tuple[_Line, ...]], int] = {}
        self.binaries = _Binaries(binaries)
        self._seen: dict[tuple[Frame, ...], int] = {}  # frames of a location -> its id

    def string(self, s: str) -> int:
        i = self.strings.get(s)
        if i is None:
            i = self.strings[s] = len(self.strings)
        return i

    def function(self, frame: Frame) -> int:
        name = self.string(frame.name)
        key = (name, name, self.string(frame.file or ""))
        i = self.functions.get(key)
        if i is None:
            i = self.functions[key] = len(self.functions) + 1
        return i

    def mapping(self, frames: Sequence[Frame]) -> int:
        outer = frames[-1]
        if not outer.module:
            return 0
        path, build_id = self.binaries.of(outer)
        key = (path, build_id or "")
        i = self.mappings.get(key)
        if i is None:
            i = self.mappings[key] = len(self.mappings) + 1
            self.mapping_flags[i] = [False, False, False]
        flags = self.mapping_flags[i]
        flags[0] |= any(f.file for f in frames)
        flags[1] |= any(f.line for f in frames)
        flags[2] |= len(frames) > 1
        return i

    def location(self, frames: Sequence[Frame]) -> int:
        """The location of one frame and the frames inlined into it (innermost first)."""
        group = tuple(frames)
        seen = self._seen.get(group)
        if seen is not None:
            return seen
        mapping = self.mapping(frames)
        lines = tuple((self.function(f), f.line or 0) for f in frames)
        key = (mapping, next((f.address for f in reversed(frames) if f.address), 0), lines)
        i = self.locations.get(key)
        if i is None:
            i = self.locations[key] = len(self.locations) + 1
        self._seen[group] = i
        return i


class _Binaries:
    """The recorded (path, build-id) pairs, to name the binary of a frame."""

    def __init__(self, binaries: Sequence[tuple[str, str | None]]) -> None:
        by_base: dict[str, set[tuple[str, str | None]]] = {}
        by_path: dict[str, set[str | None]] = {}
        self.by_id: dict[tuple[str, str], str] = {}
        for path, build_id in binaries:
            base = os.path.basename(path) or path
            by_base.setdefault(base, set()).add((path, build_id))
            by_path.setdefault(path, set()).add(build_id)
            if build_id:
                self.by_id.setdefault((base, build_id), path)
        # Only names that identify one binary: a wrong build-id is worse than none.
        self.by_base = {k: next(iter(v)) for k, v in by_base.items() if len(v) == 1}
        self.by_path = {k: next(iter(v)) for k, v in by_path.items() if len(v) == 1}

    def of(self, frame: Frame) -> tuple[str, str | None]:
        """(path, build-id) of a frame's binary, as well as known (else its module)."""
        # Frames may carry their binary's full path and build-id (optional attributes).
        path: str = getattr(frame, "path", "") or ""
        build_id: str | None = getattr(frame, "build_id", None)
        if path and build_id:
            return path, build_id
        if path:
            return path, self.by_path.get(path)
        if build_id:
            return self.by_id.get((frame.module, build_id), frame.module), build_id
        return self.by_base.get(frame.module, (frame.module, None))


def inline_groups(frames: Sequence[Frame]) -> list[list[Frame]]:
    """Frames (root first) grouped into locations, leaf location first.

    Each group lists the innermost function first: the INLINED frames, then the frame they
    were inlined into. Frames join a group only if they are at the same address (a frame
    without one, address 0, goes with any); an inlined frame that cannot join its caller
    becomes a location of its own.
    """
    if not any(f.kind is FrameKind.INLINED for f in frames):
        return [[f] for f in reversed(frames)]
    groups: list[list[Frame]] = []
    pending: list[Frame] = []
    for f in reversed(frames):
        at = next((p.address for p in pending if p.address), 0)
        if at and f.address and f.address != at:
            groups.extend([p] for p in pending)
            pending = []
        pending.append(f)
        if f.kind is not FrameKind.INLINED:
            groups.append(pending)
            pending = []
    groups.extend([p] for p in pending)
    return groups


def _frame_sort_key(f: Frame) -> tuple[str, str, str, str, int, int]:
    return (f.name, f.kind, f.module, f.file or "", f.line or 0, f.address)


def _sorted_samples(profile: Profile) -> list[StackSample]:
    """Samples in a deterministic order: by labels, then by frames (ranked once each)."""
    stacks = {id(s.frames): s.frames for s in profile}  # each distinct stack once
    unique = {f for frames in stacks.values() for f in frames}
    rank = {f: i for i, f in enumerate(sorted(unique, key=_frame_sort_key))}
    ranks = PerStack(lambda frames: tuple(rank[f] for f in frames))
    return sorted(profile, key=lambda s: (s.pid, s.tid, s.cpu, s.comm, s.thread, s.event,
                                          ranks(s.frames)))


def _sample_types(profile: Profile, period_ns: int, weight_type: str) -> list[tuple[str, str]]:
    if profile.unit == "nanoseconds":
        return [("samples", "count"), (weight_type or "off-cpu", "nanoseconds")]
    if period_ns > 0:
        return [("samples", "count"), (weight_type or "cpu", "nanoseconds")]
    return [("samples", "count")]


_SampleKey = tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]  # locations, labels


def _samples(b: _Builder, profile: Profile) -> tuple[Counter[_SampleKey], Counter[_SampleKey]]:
    """Weights and counts per (location ids, labels), in sorted sample order."""
    several_events = len({s.event for s in profile}) > 1
    keys = {k: b.string(k) for k in ("pid", "tid", "cpu", "comm", "thread")}
    weights: Counter[_SampleKey] = Counter()
    counts: Counter[_SampleKey] = Counter()
    locations = PerStack(lambda frames: tuple(b.location(g) for g in inline_groups(frames)))
    for s in _sorted_samples(profile):
        locs = locations(s.frames)
        labels = [(keys["pid"], s.pid, 0), (keys["tid"], s.tid, 0), (keys["cpu"], s.cpu, 0),
                  (keys["comm"], 0, b.string(s.comm)), (keys["thread"], 0, b.string(s.thread))]
        if several_events:
            labels.append((b.string("event"), 0, b.string(s.event)))
        key = (locs, tuple(labels))
        weights[key] += s.weight
        counts[key] += s.count
    return weights, counts


def encode(profile: Profile, binaries: Sequence[tuple[str, str | None]] = (), *,
           period_ns: int = 0, duration_nanos: int = 0, time_nanos: int = 0,
           weight_type: str = "", comments: Sequence[str] = ()) -> bytes:
    """The uncompressed profile.proto message (see :func:`render`)."""
    b = _Builder(binaries)
    nanos = profile.unit == "nanoseconds"
    types = _sample_types(profile, period_ns, weight_type)
    msg = Message()
    for t, u in types:
        msg.message(1, Message().num(1, b.string(t)).num(2, b.string(u)))

    saturated = 0

    def int64(value: int) -> int:
        """pprof's values are int64: larger sums are saturated (and counted for a warning)."""
        nonlocal saturated
        if value > INT64_MAX:
            saturated += 1
            return INT64_MAX
        return value

    weights, counts = _samples(b, profile)
    for key, weight in weights.items():
        locs, labels = key
        if nanos:
            values = [int64(counts[key]), int64(weight)]
        else:
            values = [int64(weight)] + ([int64(weight * period_ns)] if period_ns > 0 else [])
        sample = Message().packed(1, locs).packed(2, values)
        for k, num, str_index in labels:
            sample.message(3, Message().num(1, k).num(2, str_index).num(3, num))
        msg.message(2, sample)

    for (path, build_id), i in b.mappings.items():
        has_files, has_lines, has_inline = b.mapping_flags[i]
        msg.message(3, Message().num(1, i).num(5, b.string(path)).num(6, b.string(build_id))
                    .num(7, 1).num(8, has_files).num(9, has_lines).num(10, has_inline))
    for (mapping, address, lines), i in b.locations.items():
        loc = Message().num(1, i).num(2, mapping).num(3, address)
        for fn, line in lines:
            loc.message(4, Message().num(1, fn).num(2, line))
        msg.message(4, loc)
    for (name, system_name, filename), i in b.functions.items():
        msg.message(5, Message().num(1, i).num(2, name).num(3, system_name).num(4, filename))

    notes = [*comments] + ([f"{profile.lost} samples lost"] if profile.lost else [])
    comment_ids = [b.string(c) for c in notes]
    period_type = None
    if period_ns > 0 and not nanos:
        period_type = Message().num(1, b.string(types[-1][0])).num(2, b.string("nanoseconds"))
    for text in b.strings:  # insertion order is index order; "" first
        msg.raw(6, text.encode("utf-8", "backslashreplace"), always=True)
    msg.num(9, int64(time_nanos)).num(10, int64(duration_nanos))
    if period_type is not None:
        msg.message(11, period_type).num(12, int64(period_ns))
    for c in comment_ids:
        msg.num(13, c)
    if saturated:
        warn(f"pprof: {saturated} values above the int64 maximum were saturated to {INT64_MAX}")
    return bytes(msg.buf)


def render(profile: Profile, binaries: Sequence[tuple[str, str | None]] = (), *,
           period_ns: int = 0, duration_nanos: int = 0, time_nanos: int = 0,
           weight_type: str = "", comments: Sequence[str] = ()) -> bytes:
    """The gzipped profile.proto of a profile.

    ``binaries``: recorded (path, build-id) pairs (``Recording.binaries``), used to give
    mappings full paths and build-ids. ``period_ns``: nanoseconds per sample (1e9 / the
    sampling frequency; 0 when unknown or event-driven). ``duration_nanos``/``time_nanos``:
    the recording's duration and start (Unix epoch). ``weight_type``: the sample-type name
    of the weight (default ``cpu`` or ``off-cpu``). ``comments``: free text pprof shows.
    """
    data = encode(profile, binaries, period_ns=period_ns, duration_nanos=duration_nanos,
                  time_nanos=time_nanos, weight_type=weight_type, comments=comments)
    return gzip.compress(data, compresslevel=6, mtime=0)


class PprofReporter:
    """`--format pprof`: gzipped profile.proto, as `go tool pprof` reads it."""

    name = "pprof"
    binary = True
    options = ()

    def render(self, profile: Profile, options: RenderOptions) -> bytes:
        """The gzipped profile.proto of a profile."""
        period = 1_000_000_000 // profile.frequency_hz if profile.frequency_hz else 0
        return render(profile, period_ns=period, duration_nanos=profile.duration_ns,
                      time_nanos=profile.start_time_ns)


REPORTER = PprofReporter()

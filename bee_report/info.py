"""`bee info`: what a recording holds, without symbolizing it."""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from bee_contract import codec
from bee_contract.recording import Mapping, Recording, Unwinder
from bee_contract.text import lines_for_terminal
from bee_report.timewindow import Span, Window, window

SPARK = " ▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60


def describe(path: Path, time_from: str | None = None, time_to: str | None = None) -> str:
    """A readable summary of the recording at `path`, or of its `--from`/`--to` window."""
    rec = codec.read(path)
    h = rec.header
    win = window(time_from, time_to, Span(h.start_time_ns, h.start_time_ns + h.duration_ns))
    if win is not None:
        rec = replace(rec, samples=tuple(
            s for s in rec.samples if win.holds(*_bucket(rec, s.bucket))))
    return summarize(rec, str(path), win)


def _bucket(rec: Recording, bucket: int) -> tuple[int, int]:
    start, end = rec.header.bucket_span(bucket)
    return start, end - start


def sparkline(rec: Recording, win: Window | None = None, width: int = SPARK_WIDTH) -> str:
    """Samples over time in one line: `▁▂█▇  ` plus what one mark covers and the peak."""
    h = rec.header
    res = h.time_resolution_ns
    if not res:
        return "none (format v1: no time buckets)"
    first, last = 0, max(0, (h.duration_ns - 1) // res)
    if win is not None:
        # the buckets whose middle is in the window (Window.holds)
        half = res // 2
        first = max(first, -(-(win.from_ns - h.start_time_ns - half) // res))
        last = min(last, max(first, -(-(win.to_ns - h.start_time_ns - half) // res) - 1))
    n = last - first + 1
    per = -(-n // width)  # buckets per mark
    marks = [0] * (-(-n // per))
    for s in rec.samples:
        if first <= s.bucket <= last:
            marks[(s.bucket - first) // per] += s.count
    peak = max(marks, default=0)
    line = "".join(SPARK[0] if not m else SPARK[1 + (len(SPARK) - 2) * m // peak]
                   for m in marks)
    span = f"{first * res / 1e9:g} to {(last + 1) * res / 1e9:g} s"
    return (f"|{line}| {span}, {per * res / 1e6:g} ms per mark, "
            f"peak {peak} samples per mark")




def summarize(rec: Recording, name: str, win: Window | None = None) -> str:
    """Header, counts, timeline, processes and binaries (with build-ids and hit counts)."""
    h = rec.header
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(h.start_time_ns / 1e9))
    lines = [
        f"file:       {name}",
        f"host:       {h.host} ({h.arch})",
        f"kernel:     {h.kernel_release} build-id {rec.kernel.build_id or 'unknown'}",
        f"started:    {started}",
        f"duration:   {h.duration_ns / 1e9:.3f} s"
        + (f", time buckets of {h.time_resolution_ns / 1e6:g} ms"
           if h.time_resolution_ns else ""),
        *([f"window:     {win.text}"] if win is not None else []),
        f"mode:       {h.mode} ({', '.join(h.events)}), {h.frequency_hz} Hz, "
        f"weight in {h.weight_unit}",
        f"target:     {h.target}",
        *([f"unwinder:   {h.unwinder} ({_unwinder(h.unwinder)})"] if h.unwinder else []),
        f"recorder:   bee {h.bee_version}" + (f", sequence {h.sequence}" if h.sequence else ""),
        f"samples:    {rec.total_samples} in {len(rec.samples)} keys, "
        f"{len(rec.stacks)} unique stacks",
        f"timeline:   {sparkline(rec, win)}",
        f"lost:       {rec.total_lost}"
        + "".join(f", {k} {v}" for k, v in sorted(rec.lost.items()) if v),
        f"kernel symbols: {len(rec.kernel.symbols)}",
    ]
    per_proc: Counter[int] = Counter()
    for s in rec.samples:
        per_proc[s.process] += s.count
    lines.append(f"processes:  {len(rec.processes)}")
    for i, p in sorted(enumerate(rec.processes), key=lambda ip: -per_proc[ip[0]]):
        cmd = " ".join(p.cmdline) if p.cmdline else p.exe
        lines.append(f"  {p.pid:>7} {per_proc[i]:>8} samples  {p.comm:<16} {cmd}"[:160])
    hits = _binary_hits(rec)
    lines.append(f"binaries:   {len(rec.binaries)}")
    for i, b in enumerate(rec.binaries):
        mark = f"{hits[i]:>8} hits" if hits[i] else "  not hit    "
        lines.append(f"  {b.build_id or '(no build-id)':<42} {mark}  {b.path}")
    return lines_for_terminal(lines)


def _binary_hits(rec: Recording) -> Counter[int]:
    """Samples whose user stack has at least one address in each binary.

    Mappings are sorted once per process and searched by bisection, and each distinct
    (process, stack) is resolved once, however many samples share it.
    """
    index: dict[int, tuple[list[int], list[Mapping]]] = {}
    per_stack: dict[tuple[int, int], frozenset[int]] = {}
    hits: Counter[int] = Counter()
    for s in rec.samples:
        if s.user_stack < 0:
            continue
        key = (s.process, s.user_stack)
        seen = per_stack.get(key)
        if seen is None:
            if s.process not in index:
                maps = sorted(rec.processes[s.process].maps, key=lambda m: m.start)
                index[s.process] = ([m.start for m in maps], maps)
            starts, maps = index[s.process]
            found = set()
            for a in rec.stacks[s.user_stack]:
                i = bisect.bisect_right(starts, a) - 1
                if i >= 0 and a < maps[i].end and maps[i].binary >= 0:
                    found.add(maps[i].binary)
            seen = per_stack[key] = frozenset(found)
        for b in seen:
            hits[b] += s.count
    return hits


def _unwinder(name: str) -> str:
    """What a recorded unwinder name means ("unknown" for a name this bee does not know)."""
    return Unwinder(name).description if name in tuple(Unwinder) else "unknown"

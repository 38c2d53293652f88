"""A process's JIT perf map (`/tmp/perf-PID.map`), read incrementally while it grows.

JIT compilers append `START SIZE NAME` lines (hex start and size) as they emit code, and
reuse addresses: V8 frees code and puts other code at the same place, then appends a new
line. A later line supersedes earlier ones over the range it covers, so at any moment an
address is named by the latest line covering it. :class:`PerfMap` keeps that "current"
view: each :meth:`PerfMap.update` reads only the bytes appended since the last one and
paints the new lines over the older ones; :meth:`PerfMap.lookup` gives the line that
names an address now.

Updates come more often than samples are drained (every poll of the record loop), each
given the current time bucket, so a line is known to have been written after the bucket
of the update before the one that read it. :meth:`PerfMap.lookup_at` uses that to name a
sample of an earlier bucket by the line its address had then: the pieces of older lines
painted over are kept (see :meth:`PerfMap.forget`) until no sample can need them.

The file is written by the recorded process, so it is untrusted: it is read only when a
regular file (not a symlink, a FIFO, a device or a kernel file; see
:func:`bee_contract.safeopen.open_regular`), never blocking; bytes read are bounded per
process (:data:`MAX_BYTES` in all); lines whose start or size is not a plain hex number
of at most 64 bits are skipped; a file that shrinks or is replaced is read again from its
start.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import os
import re
from dataclasses import dataclass

from bee_contract.safeopen import open_regular

#: Bytes read from one process's perf map over the whole recording, at most.
MAX_BYTES = 256 << 20
#: Longest line kept waiting for its end (a longer one is dropped).
_MAX_LINE = 1 << 16
#: Lines read at once above which they are painted in bulk.
_BULK = 256
#: A start or size: plain hex (optional 0x) of at most 64 bits; no sign, no underscores.
_HEX64 = re.compile(rb"(?:0[xX])?[0-9a-fA-F]{1,16}")


@dataclass(frozen=True, slots=True)
class PerfMapEntry:
    """One line of a perf map; `line` counts lines from 0 in file order.

    `after`: the line was written after the update made in this time bucket (-1: unknown,
    it may always have been there).
    """

    line: int
    start: int
    size: int
    name: str
    after: int = -1


@dataclass(frozen=True, slots=True)
class _Piece:
    """[lo, hi) was named by `entry` until line `by` (written after bucket `after`)."""

    lo: int
    hi: int
    entry: PerfMapEntry
    by: int
    after: int


def perf_map_paths(pid: int, ns_pid: int) -> tuple[str, str]:
    """Where the process's perf map is: inside its mount namespace first, then ours."""
    return f"/proc/{pid}/root/tmp/perf-{ns_pid}.map", f"/tmp/perf-{pid}.map"


class PerfMap:
    """The current entries of one process's perf map."""

    def __init__(self, paths: tuple[str, ...], max_bytes: int = MAX_BYTES) -> None:
        self.paths = paths
        self.max_bytes = max_bytes
        self.found = False  # whether the last update could read the file
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the file read
        self._reset()

    def _reset(self) -> None:
        self.offset = 0  # bytes of the file consumed so far
        self.lines = 0
        self._partial = b""
        self._read_bucket = -1  # time bucket of the last update (-1: none, or unknown)
        # disjoint painted segments, sorted: [start, end) is named by entry
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._entries: list[PerfMapEntry] = []
        self._pieces: list[_Piece] = []  # painted over, oldest first

    def update(self, bucket: int | None = None) -> bool:
        """Read what was appended since the last call; False when the file is unreadable.

        `bucket` is the current time bucket (None: unknown); lines read now were written
        after the previous update's bucket.
        """
        after = self._read_bucket
        self._read_bucket = -1 if bucket is None else bucket
        for path in self.paths:
            try:
                # the process controls the path: no symlink, FIFO or device is opened
                with open_regular(path, follow=False, max_size=None) as f:
                    st = os.fstat(f.fileno())
                    ident = (st.st_dev, st.st_ino)
                    if ident != self._file or st.st_size < self.offset:
                        self._file = ident
                        read_bucket = self._read_bucket
                        self._reset()
                        self._read_bucket = read_bucket
                    want = min(st.st_size, self.max_bytes) - self.offset
                    if want > 0:
                        f.seek(self.offset)
                        data = f.read(want)
                        self.offset += len(data)
                        self._feed(data, after)
                    self.found = True
                    return True
            except OSError:
                continue
        self.found = False
        return False

    def lookup(self, address: int) -> PerfMapEntry | None:
        """The entry naming `address` now (the latest line covering it), or None."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._ends[i]:
            return self._entries[i]
        return None

    def lookup_at(self, address: int, bucket: int) -> PerfMapEntry | None:
        """The entry that named `address` in time bucket `bucket`, as far as updates tell.

        The current entry, unless it was written after `bucket` ended: then the one it
        painted over there (and so on back), while such pieces are still kept. When no
        entry named the address then, as far as is known, the current one names it.
        """
        current = entry = self.lookup(address)
        while entry is not None and bucket < entry.after:
            line = entry.line
            entry = next((p.entry for p in reversed(self._pieces)
                          if p.by == line and p.lo <= address < p.hi), None)
            if entry is None:
                return current
        return entry

    def forget(self, bucket: int) -> None:
        """Drop painted-over pieces no sample of bucket `bucket` or later can need."""
        self._pieces = [p for p in self._pieces if p.after > bucket]

    def __len__(self) -> int:
        """Number of painted segments (current entries, some split by later ones)."""
        return len(self._entries)

    def _feed(self, data: bytes, after: int) -> None:
        text = self._partial + data
        cut = text.rfind(b"\n") + 1
        self._partial = text[cut:] if len(text) - cut <= _MAX_LINE else b""
        batch = []
        for raw in text[:cut].split(b"\n")[:-1]:
            entry = parse_line(raw, self.lines, after)
            self.lines += 1
            if entry is not None:
                batch.append(entry)
        if len(batch) > _BULK:
            self._paint_many(batch, after)
        else:
            for entry in batch:
                self._paint(entry)

    def _paint_many(self, batch: list[PerfMapEntry], after: int) -> None:
        """Paint many lines at once (a map read for the first time, a burst of new code).

        Painting one by one costs a list insertion per line, quadratic for a big map;
        here the batch's own view (later lines over earlier ones) is swept in
        O(k log k), then laid over the current segments in one pass.
        """
        top = _envelope(batch)
        out: list[tuple[int, int, PerfMapEntry]] = []
        j = 0
        for s0, s1, old in zip(self._starts, self._ends, self._entries, strict=True):
            while j < len(top) and top[j][1] <= s0:
                j += 1
            cur, k = s0, j
            while k < len(top) and top[k][0] < s1:
                b0, b1, new = top[k]
                if b0 > cur:
                    out.append((cur, b0, old))
                if after >= 0:
                    self._pieces.append(_Piece(max(b0, s0), min(b1, s1), old, new.line, after))
                cur = max(cur, b1)
                k += 1
            if cur < s1:
                out.append((cur, s1, old))
        out += top
        out.sort(key=lambda seg: seg[0])
        self._starts = [seg[0] for seg in out]
        self._ends = [seg[1] for seg in out]
        self._entries = [seg[2] for seg in out]

    def _paint(self, e: PerfMapEntry) -> None:
        """Put `e` over [start, start + size) (at least one byte), trimming older segments."""
        lo, hi = e.start, e.start + max(e.size, 1)
        starts, ends, entries = self._starts, self._ends, self._entries
        i = bisect.bisect_left(starts, lo)
        if e.after >= 0:  # remember what it paints over, for samples taken before it
            first = i - 1 if i > 0 and ends[i - 1] > lo else i
            last = bisect.bisect_left(starts, hi, i)
            self._pieces += [_Piece(max(starts[k], lo), min(ends[k], hi), entries[k], e.line,
                                    e.after) for k in range(first, last)]
        tail: tuple[int, int, PerfMapEntry] | None = None
        if i > 0 and ends[i - 1] > lo:  # a segment starting before lo reaches into it
            if ends[i - 1] > hi:
                tail = (hi, ends[i - 1], entries[i - 1])
            ends[i - 1] = lo
        j = bisect.bisect_left(starts, hi, i)
        if j > i and ends[j - 1] > hi:  # the last covered segment sticks out past hi
            tail = (hi, ends[j - 1], entries[j - 1])
        starts[i:j] = [lo]
        ends[i:j] = [hi]
        entries[i:j] = [e]
        if tail is not None:
            starts.insert(i + 1, tail[0])
            ends.insert(i + 1, tail[1])
            entries.insert(i + 1, tail[2])


def _envelope(batch: list[PerfMapEntry]) -> list[tuple[int, int, PerfMapEntry]]:
    """Disjoint sorted (start, end, entry) segments: each point named by its latest line."""
    spans = sorted(((e.start, e.start + max(e.size, 1), e) for e in batch),
                   key=lambda t: t[0])
    bounds = sorted({x for lo, hi, _ in spans for x in (lo, hi)})
    out: list[tuple[int, int, PerfMapEntry]] = []
    active: list[tuple[int, int, PerfMapEntry]] = []  # heap: (-line, end, entry)
    i = 0
    for x, nxt in itertools.pairwise(bounds):
        while i < len(spans) and spans[i][0] == x:
            heapq.heappush(active, (-spans[i][2].line, spans[i][1], spans[i][2]))
            i += 1
        while active and active[0][1] <= x:
            heapq.heappop(active)
        if not active:
            continue
        e = active[0][2]
        if out and out[-1][2] is e and out[-1][1] == x:
            out[-1] = (out[-1][0], nxt, e)
        else:
            out.append((x, nxt, e))
    return out


def parse_line(raw: bytes, line: int = 0, after: int = -1) -> PerfMapEntry | None:
    """One `START SIZE NAME` line (hex start and size) as entry number `line`, or None.

    Only plain hex numbers of at most 64 bits are taken, and ranges that end within the
    64-bit address space; anything else is skipped.
    """
    parts = raw.split(b" ", 2)
    if len(parts) < 3 or not (_HEX64.fullmatch(parts[0]) and _HEX64.fullmatch(parts[1])):
        return None
    start, size = int(parts[0], 16), int(parts[1], 16)
    if start + size > 1 << 64:
        return None
    name = parts[2].strip().decode("utf-8", "replace")
    return PerfMapEntry(line, start, size, name, after)

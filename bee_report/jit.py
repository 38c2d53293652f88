"""Which recorded perf-map entry names a JIT address at a given time.

JIT compilers reuse code addresses, so a process may have several recorded entries
covering one address, each naming the samples of its time buckets
[first_bucket, last_bucket] (see `formats/recording-v2.md`). For a sample's address and
bucket, :meth:`JitIndex.lookup` picks among the entries covering the address:

1. one whose range holds the bucket (if several: the one that became current last, i.e.
   the greatest first bucket, then the greatest start, then the later line);
2. else the one current most recently before the bucket (greatest last bucket);
3. else the one that became current soonest after it.

Entries without a time range (files that predate it) hold every bucket, so rule 1 picks
the covering entry with the greatest start, as before.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from bee_contract.recording import JitSymbol

#: Entries examined per lookup, at most (a hostile file could make every entry cover
#: every address).
MAX_CANDIDATES = 1024


class JitIndex:
    """The JIT entries of one process, searchable by address and time bucket."""

    def __init__(self, entries: Iterable[JitSymbol]) -> None:
        self.entries = sorted(entries, key=lambda j: j.start)  # stable: file order kept
        self.starts = [j.start for j in self.entries]
        self.reach = max((max(j.size, 1) for j in self.entries), default=1)
        #: True when the entries name different time ranges, so the bucket matters
        self.timed = len({(j.first_bucket, j.last_bucket) for j in self.entries}) > 1

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, address: int, bucket: int) -> JitSymbol | None:
        """The entry naming `address` in time bucket `bucket` (see the module doc), or None."""
        covering: list[tuple[int, JitSymbol]] = []
        i = bisect.bisect_right(self.starts, address) - 1
        low = address - self.reach
        seen = 0
        while i >= 0 and self.starts[i] > low and seen < MAX_CANDIDATES:
            e = self.entries[i]
            if address < e.start + max(e.size, 1):
                covering.append((i, e))
            i -= 1
            seen += 1
        if not covering:
            return None
        now = [(e.first_bucket, e.start, i, e) for i, e in covering
               if e.first_bucket <= bucket <= e.last_bucket]
        if now:
            return max(now, key=lambda t: t[:3])[3]
        before = [(e.last_bucket, e.start, i, e) for i, e in covering if e.last_bucket < bucket]
        if before:
            return max(before, key=lambda t: t[:3])[3]
        return min(covering, key=lambda t: (t[1].first_bucket, -t[1].start, -t[0]))[1]

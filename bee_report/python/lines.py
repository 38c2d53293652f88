"""Line numbers from recorded CPython line tables (`co_linetable`).

Two formats: 3.10's pairs of (bytes delta, signed line delta), addressed in bytes, and the
location table of 3.11+ (Objects/locations.md), addressed in code units. Tables come from
a recorded (hostile) process and may be capped: parsing is bounded by the table's length,
never raises, and an instruction past the end has no known line (None).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

_NO_LINE = -128  # 3.10: a range without a line number


def _is_310(version: int) -> bool:
    return (version >> 16) & 0xFF == 10 and version >> 24 == 3


def line_of(version: int, linetable: bytes, firstlineno: int, index: int) -> int | None:
    """Line of the instruction at `index` (in code units) of a code object, or None."""
    if index < 0:
        return None
    if _is_310(version):
        return line_310(linetable, firstlineno, index * 2)
    return line_311(linetable, firstlineno, index)


def line_310(table: bytes, firstlineno: int, offset: int) -> int | None:
    """3.10: line of the instruction at byte `offset`."""
    for start, end, line in ranges_310(table, firstlineno):
        if start <= offset < end:
            return line
    return None


def ranges_310(table: bytes, firstlineno: int) -> Iterator[tuple[int, int, int | None]]:
    """3.10: (start, end, line) ranges in bytes, in order (some may be empty)."""
    line = firstlineno
    end = 0
    for i in range(0, len(table) - 1, 2):
        start = end
        end += table[i]
        delta = table[i + 1] - 256 if table[i + 1] > 127 else table[i + 1]
        if delta == _NO_LINE:
            current: int | None = None
        else:
            line += delta
            current = line
        yield start, end, current


def _varint(table: bytes, pos: int) -> tuple[int, int]:
    """An unsigned varint of 6-bit chunks (bit 6 continues); returns (value, next pos)."""
    value = shift = 0
    while pos < len(table):
        b = table[pos]
        pos += 1
        value |= (b & 63) << shift
        shift += 6
        if not b & 64:
            return value, pos
    return value, len(table) + 1  # ran off the end: the caller stops


def _svarint(table: bytes, pos: int) -> tuple[int, int]:
    value, pos = _varint(table, pos)
    return (-(value >> 1) if value & 1 else value >> 1), pos


def ranges_311(table: bytes, firstlineno: int) -> Iterator[tuple[int, int, int | None]]:
    """3.11+: (start, end, line) ranges in code units, in order."""
    line = firstlineno
    pos = unit = 0
    while pos < len(table):
        first = table[pos]
        pos += 1
        if not first & 0x80:
            return  # not the start of an entry: corrupt or capped table
        code = (first >> 3) & 15
        length = (first & 7) + 1
        current: int | None = line
        if code == 15:
            current = None
        elif code == 14:
            delta, pos = _svarint(table, pos)
            line += delta
            current = line
            for _ in range(3):  # end line, column, end column
                _, pos = _varint(table, pos)
        elif code == 13:
            delta, pos = _svarint(table, pos)
            line += delta
            current = line
        elif code >= 10:
            line += code - 10
            current = line
            pos += 2
        else:
            pos += 1
        if pos > len(table):
            return
        yield unit, unit + length, current
        unit += length


def line_311(table: bytes, firstlineno: int, index: int) -> int | None:
    """3.11+: line of the instruction at code unit `index`."""
    for start, end, line in ranges_311(table, firstlineno):
        if start <= index < end:
            return line
        if start > index:
            break
    return None


class LineIndex:
    """One code object's line table, decoded at most once, for many lookups (by bisection).

    Ranges are decoded lazily, only as far as the highest instruction asked for, and answer
    exactly as :func:`line_of` does: ranges are contiguous from 0, so the first range whose
    end lies past an instruction is the one holding it (empty 3.10 ranges never are).
    3.11+ tables are decoded here in one loop (as :func:`ranges_311` walks them, without a
    generator or a call per varint): a report decodes thousands of entries.
    """

    __slots__ = ("_ends", "_line", "_lines", "_more", "_pos", "_scale", "_table")

    def __init__(self, version: int, linetable: bytes, firstlineno: int) -> None:
        self._scale = 2 if _is_310(version) else 1  # 3.10 tables count bytes
        self._more: Iterator[tuple[int, int, int | None]] | None = (
            ranges_310(linetable, firstlineno) if self._scale == 2 else None)
        self._table = linetable
        self._pos = 0 if self._scale == 1 else -1  # next 3.11 entry; -1: no more
        self._line = firstlineno
        self._ends: list[int] = []
        self._lines: list[int | None] = []

    def line(self, index: int) -> int | None:
        """Line of the instruction at `index` (in code units), or None."""
        if index < 0:
            return None
        at = index * self._scale
        ends = self._ends
        if not ends or ends[-1] <= at:
            if self._pos >= 0:
                self._decode_311(at)
            while self._more is not None and (not ends or ends[-1] <= at):
                entry = next(self._more, None)
                if entry is None:
                    self._more = None
                    break
                ends.append(entry[1])
                self._lines.append(entry[2])
        i = bisect.bisect_right(ends, at)
        return self._lines[i] if i < len(ends) else None

    def _decode_311(self, at: int) -> None:
        """Decode 3.11+ entries until one ends past code unit `at` or the table ends
        (exactly the ranges :func:`ranges_311` yields)."""
        table = self._table
        n = len(table)
        pos, line = self._pos, self._line
        ends, lines = self._ends, self._lines
        unit = ends[-1] if ends else 0
        while pos < n:
            first = table[pos]
            if not first & 0x80:
                break  # not the start of an entry: corrupt or capped table
            code = (first >> 3) & 15
            current: int | None
            if code < 10:  # short form: same line, one byte of columns
                pos += 2
                current = line
            elif code < 13:  # one-line form: line delta in the code, two bytes of columns
                line += code - 10
                current = line
                pos += 3
            elif code == 15:  # no location
                pos += 1
                current = None
            else:  # 13: signed varint line delta; 14: then end line, column, end column
                pos += 1
                value = shift = 0
                while pos < n:  # varints: 6-bit chunks, bit 6 continues
                    b = table[pos]
                    pos += 1
                    value |= (b & 63) << shift
                    if not b & 64:
                        break
                    shift += 6
                else:
                    break  # ran off the end: stop
                line += -(value >> 1) if value & 1 else value >> 1
                if code == 14:  # skip three more varints
                    left = 3
                    while pos < n:
                        b = table[pos]
                        pos += 1
                        if not b & 64:
                            left -= 1
                            if not left:
                                break
                    else:
                        break
                current = line
            if pos > n:
                break
            unit += (first & 7) + 1
            ends.append(unit)
            lines.append(current)
            if unit > at:
                self._pos, self._line = pos, line
                return
        self._pos = -1

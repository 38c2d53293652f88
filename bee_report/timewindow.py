"""Time windows: `--from` / `--to` values, the recording span they must fall in, and the
rule that decides which time buckets a window holds.

A value is seconds from the start of the recording (`12.5`; a merged `--rotate` series
counts from its earliest file), an ISO 8601 date and time (`2026-11-30T12:03:05`, UTC
unless it carries a zone such as `+01:00` or `Z`), or a time of day (`12:03:05`, UTC, on
the recording's first day). A time bucket belongs to a window when its middle does: the
window is rounded to whole buckets, and every sample counts in exactly one of two
adjacent windows.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from bee_contract.errors import ReportError

_SECONDS = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)s?$")
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Span:
    """What a recording (or merged series) covers: [start_ns, end_ns) in Unix epoch ns."""

    start_ns: int
    end_ns: int

    def describe(self) -> str:
        """`2026-11-30T12:00:00.000Z .. 12:05:00.000Z (0 to 300.000 s)`."""
        first, last = iso(self.start_ns), iso(self.end_ns)
        if first[:10] == last[:10]:
            last = last[11:]
        return f"{first} .. {last} (0 to {(self.end_ns - self.start_ns) / _NS:.3f} s)"


@dataclass(frozen=True, slots=True)
class Window:
    """[from_ns, to_ns) in Unix epoch ns, and how the user wrote it."""

    from_ns: int
    to_ns: int
    text: str

    def holds(self, bucket_start_ns: int, bucket_ns: int) -> bool:
        """Whether the time bucket [start, start + width) belongs to this window."""
        middle = bucket_start_ns + bucket_ns // 2
        return self.from_ns <= middle < self.to_ns


def iso(ns: int) -> str:
    """A Unix epoch time in ns as ISO 8601 UTC with milliseconds: `2026-11-30T12:03:05.250Z`."""
    when = dt.datetime.fromtimestamp(ns // _NS, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % _NS // 1_000_000:03d}Z"


def parse_time(text: str, span: Span, option: str) -> int:
    """A `--from`/`--to` value as Unix epoch ns (see the module docstring)."""
    value = text.strip()
    if _SECONDS.match(value):
        return span.start_ns + round(float(value.rstrip("s")) * _NS)
    try:
        if "T" in value or " " in value or re.match(r"^\d{4}-\d\d-\d\d$", value):
            when = dt.datetime.fromisoformat(value)
        else:
            day = dt.datetime.fromtimestamp(span.start_ns // _NS, dt.UTC).date()
            clock = dt.time.fromisoformat(value)
            when = dt.datetime.combine(day, clock)
    except ValueError:
        raise ReportError(
            f"{option} {text!r}: not seconds from the start (12.5) nor a date and time "
            "(2026-11-30T12:03:05, 12:03:05+01:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


def window(time_from: str | None, time_to: str | None, span: Span,
           prefix: str = "") -> Window | None:
    """The window of `--from`/`--to` (None when neither is given), checked against `span`.

    A window that is empty or lies outside the recording is refused with one line saying
    the recording's span. `prefix` names the options (`base-` for `bee diff --base-from`).
    """
    if time_from is None and time_to is None:
        return None
    lo = span.start_ns if time_from is None else parse_time(time_from, span, f"--{prefix}from")
    hi = span.end_ns if time_to is None else parse_time(time_to, span, f"--{prefix}to")
    text = " ".join(part for part in (
        f"--{prefix}from {time_from}" if time_from is not None else "",
        f"--{prefix}to {time_to}" if time_to is not None else "") if part)
    if hi <= lo:
        raise ReportError(f"{text}: the window ends before it starts")
    if hi <= span.start_ns or lo >= span.end_ns:
        raise ReportError(f"{text}: outside the recording, which spans {span.describe()}")
    return Window(lo, hi, text)


def relative(ns: int, span: Span) -> str:
    """Seconds from the span's start as a `--from` value: `12.3`."""
    return f"{(ns - span.start_ns) / _NS:.3f}".rstrip("0").rstrip(".") or "0"

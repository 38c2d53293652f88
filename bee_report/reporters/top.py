"""The top table: functions (or modules) by self and total weight, with percentages."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bee_contract.errors import ReportError
from bee_contract.text import lines_for_terminal
from bee_report.profile import Frame, Profile, grouped
from bee_report.reporters.options import RenderOptions, TopBy


@dataclass(frozen=True, slots=True)
class TopRow:
    """One row of the table."""

    name: str
    self_weight: int
    total_weight: int


def frame_label(frame: Frame, by: str) -> str:
    """The row name a frame counts towards in a table `by` function, module or line."""
    if by == "module":
        return frame.module or "[unknown]"
    if by == "line":
        where = f"{frame.file}:{frame.line or '?'}" if frame.file else frame.module or "?"
        return f"{frame.name} ({where})"
    return frame.name + frame.kind.label


def top_rows(profile: Profile, by: str = "function") -> list[TopRow]:
    """Rows sorted by self weight, then total weight, then name."""
    self_w: Counter[str] = Counter()
    total_w: Counter[str] = Counter()
    for s, weight, _ in grouped(profile):
        if not s.frames:
            continue
        labels = [frame_label(f, by) for f in s.frames]
        self_w[labels[-1]] += weight
        for name in set(labels):
            total_w[name] += weight
    rows = [TopRow(n, self_w[n], total_w[n]) for n in total_w]
    rows.sort(key=lambda r: (-r.self_weight, -r.total_weight, r.name))
    return rows


def fmt_weight(value: int, unit: str) -> str:
    """A weight for display: times for nanoseconds, plain counts otherwise."""
    if unit == "nanoseconds":
        for div, suffix in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
            if value >= div:
                return f"{value / div:.2f}{suffix}"
        return f"{value}ns"
    return str(value)


def render(profile: Profile, by: str = "function", limit: int = 25) -> str:
    """The table as text, with a one-line summary on top."""
    total = profile.total
    rows = top_rows(profile, by)
    unit = profile.unit
    head = f"{total} {unit}" if unit != "nanoseconds" else f"{fmt_weight(total, unit)} total"
    lines = [f"# {head} in {profile.stack_count} stacks"
             + (f", {profile.lost} lost" if profile.lost else "")]
    title = {"module": "MODULE", "line": "FUNCTION (FILE:LINE)"}.get(by, "FUNCTION")
    lines.append(f"{'SELF':>10} {'SELF%':>7} {'TOTAL':>10} {'TOTAL%':>7}  {title}")
    for r in rows[: max(limit, 0)]:
        sp = 100.0 * r.self_weight / total if total else 0.0
        tp = 100.0 * r.total_weight / total if total else 0.0
        lines.append(f"{fmt_weight(r.self_weight, unit):>10} {sp:>6.2f}% "
                     f"{fmt_weight(r.total_weight, unit):>10} {tp:>6.2f}%  {r.name}")
    return lines_for_terminal(lines)


class TopReporter:
    """`--format top`: functions, modules or lines by self and total weight."""

    name = "top"
    binary = False
    options = ("by", "limit")

    def render(self, profile: Profile, options: RenderOptions) -> str:
        """The top table of a profile."""
        if options.by not in tuple(TopBy):
            raise ReportError(f"--by {options.by}: choose one of {', '.join(TopBy)}")
        return render(profile, options.by, options.limit)


REPORTER = TopReporter()

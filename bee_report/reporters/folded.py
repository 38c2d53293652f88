"""Folded stacks (`comm;frame;...;frame count`), the format flamegraph.pl, inferno and
speedscope read, and the intermediate the SVG flame graphs are drawn from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from bee_report.profile import FrameKind, Profile, StackSample, folded_name, grouped
from bee_report.reporters.options import RenderOptions


def folded_stack(sample: StackSample, lines: bool = False) -> tuple[str, ...]:
    """The folded frames of one sample, root first.

    Grouping frames (`cpu_3`, `pid_42`, from `--per-cpu` and the like) come first, then
    the process name, then the stack's frames from the outermost to the leaf.
    """
    frames = sample.frames
    n = 0
    while n < len(frames) and frames[n].kind is FrameKind.ROOT:
        n += 1
    return (*(folded_name(f.name) for f in frames[:n]), folded_name(sample.comm or "[unknown]"),
            *(f.folded(lines) for f in frames[n:]))


def fold(profile: Profile, lines: bool = False) -> Counter[tuple[str, ...]]:
    """Weights summed per folded stack."""
    out: Counter[tuple[str, ...]] = Counter()
    for s, weight, _ in grouped(profile, lambda s: s.comm):
        out[folded_stack(s, lines)] += weight
    return out


def format_folded(stacks: Iterable[tuple[tuple[str, ...], int]]) -> str:
    """One line per stack, sorted, `frame;frame count`."""
    return "".join(f"{';'.join(k)} {v}\n" for k, v in sorted(stacks) if v > 0)


def render(profile: Profile, lines: bool = False) -> str:
    """The folded text of a profile."""
    return format_folded(fold(profile, lines).items())


class FoldedReporter:
    """`--format folded`: one `frame;frame count` line per stack."""

    name = "folded"
    binary = False
    options = ("lines",)

    def render(self, profile: Profile, options: RenderOptions) -> str:
        """The folded text of a profile."""
        return render(profile, options.lines)


REPORTER = FoldedReporter()

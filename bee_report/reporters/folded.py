"""Folded stacks (`comm;frame;...;frame count`), the format flamegraph.pl, inferno and
speedscope read, and the intermediate the SVG flame graphs are drawn from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from bee_report.profile import Profile, StackSample


def stack_key(sample: StackSample, lines: bool = False) -> tuple[str, ...]:
    """The folded frames of one sample, root (process name) first."""
    return (sample.comm or "[unknown]", *(f.folded(lines) for f in sample.frames))


def fold(profile: Profile, lines: bool = False) -> Counter[tuple[str, ...]]:
    """Weights summed per folded stack."""
    out: Counter[tuple[str, ...]] = Counter()
    for s in profile:
        out[stack_key(s, lines)] += s.weight
    return out


def format_folded(stacks: Iterable[tuple[tuple[str, ...], int]]) -> str:
    """One line per stack, sorted, `frame;frame count`."""
    return "".join(f"{';'.join(k)} {v}\n" for k, v in sorted(stacks) if v > 0)


def render(profile: Profile, lines: bool = False) -> str:
    """The folded text of a profile."""
    return format_folded(fold(profile, lines).items())

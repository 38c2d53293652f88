"""Folded stacks (`comm;frame;...;frame count`), the format flamegraph.pl, inferno and
speedscope read, and the intermediate the SVG flame graphs are drawn from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from bee_report.profile import Frame, FrameKind, Profile, StackSample, folded_name, grouped
from bee_report.reporters.options import RenderOptions


class FoldedText:
    """`Frame.folded(lines)` of each distinct frame object, computed once.

    The symbolizer shares frame objects between the stacks they appear in, so the memo is
    keyed by identity (it keeps the frames alive, so each identity stays unique).
    """

    def __init__(self, lines: bool) -> None:
        self.lines = lines
        self._text: dict[int, str] = {}
        self._alive: list[Frame] = []

    def many(self, frames: Sequence[Frame]) -> list[str]:
        """The folded text of each frame."""
        text = self._text
        out: list[str | None] = list(map(text.get, map(id, frames)))  # no Python-level loop
        if None in out:  # frames not seen before
            for i, f in enumerate(frames):
                if out[i] is None:
                    done = text.get(id(f))
                    if done is None:
                        self._alive.append(f)
                        done = text[id(f)] = f.folded(self.lines)
                    out[i] = done
        return out  # type: ignore[return-value]  # no None left


def folded_stack(sample: StackSample, lines: bool = False,
                 text: FoldedText | None = None) -> tuple[str, ...]:
    """The folded frames of one sample, root first.

    Grouping frames (`cpu_3`, `pid_42`, from `--per-cpu` and the like) come first, then
    the process name, then the stack's frames from the outermost to the leaf. `text`, when
    given, formats the frames (its `lines` wins over `lines`).
    """
    frames = sample.frames
    n = 0
    while n < len(frames) and frames[n].kind is FrameKind.ROOT:
        n += 1
    head = (*(folded_name(f.name) for f in frames[:n]),
            folded_name(sample.comm or "[unknown]"))
    if text is None:
        return (*head, *(f.folded(lines) for f in frames[n:]))
    return (*head, *text.many(frames[n:]))


def fold(profile: Profile, lines: bool = False) -> Counter[tuple[str, ...]]:
    """Weights summed per folded stack."""
    out: Counter[tuple[str, ...]] = Counter()
    text = FoldedText(lines)
    for s, weight, _ in grouped(profile, lambda s: s.comm):
        out[folded_stack(s, lines, text)] += weight
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

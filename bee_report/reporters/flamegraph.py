"""Flame graphs from folded stacks: the public entry points.

Folded stacks are the intermediate every bee reporter shares (as in py-spy and inferno):
one root-first sequence of frame names and a count per distinct stack. Frame kinds ride on
flamegraph.pl's suffixes (``_[k]`` kernel, ``_[j]`` JIT, ``_[i]`` inlined).

Two renderers draw them: bee's own self-contained interactive SVG
(:mod:`bee_report.reporters.svg_builtin`) and, when installed, inferno
(:mod:`bee_report.reporters.inferno`). ``renderer="auto"`` picks inferno when
``inferno-flamegraph`` is on PATH and the built-in renderer otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from bee_contract.errors import ReportError
from bee_report.profile import Profile
from bee_report.reporters import inferno, svg_builtin
from bee_report.reporters.options import FlameOptions, Palette, Renderer, RenderOptions


def render_svg(folded: Iterable[tuple[Sequence[str], int]], options: FlameOptions) -> str:
    """Draw folded stacks ``(root-first frames, count)`` as a flame graph SVG document.

    Raises :class:`~bee_contract.errors.ReportError` for bad options, a negative count, or
    when the chosen renderer cannot run. Empty input gives an SVG that says "No samples".
    """
    renderer = _resolve(options)
    rows = [(frames, count, 0) for frames, count in folded]
    svg_builtin.check_counts(rows)
    if renderer == "builtin" or not any(count for _, count, _ in rows):
        return svg_builtin.render(rows, options, diff=False)
    return inferno.render(((frames, count) for frames, count, _ in rows), options)


def render_diff_svg(folded: Iterable[tuple[Sequence[str], int, int]], options: FlameOptions) -> str:
    """Draw a differential flame graph from ``(root-first frames, base_count, new_count)``.

    Frame widths follow the new counts. A frame whose share of all samples grew is red,
    one that shrank is blue, with intensity by the change in share; tooltips show both
    counts and the change in percentage points (like flamegraph.pl's difffolded).
    """
    renderer = _resolve(options)
    rows = [(frames, new, base) for frames, base, new in folded]
    svg_builtin.check_counts(rows)
    if renderer == "builtin" or not any(new for _, new, _ in rows):
        return svg_builtin.render(rows, options, diff=True)
    return inferno.render_diff(((f, base, new) for f, new, base in rows), options)


def parse_folded(text: str, source: str = "<folded>") -> list[tuple[tuple[str, ...], int]]:
    """Parse folded text (``frame;frame;frame count`` per line) into ``(frames, count)``.

    Blank lines are skipped; a line without a trailing integer count raises
    :class:`~bee_contract.errors.ReportError` naming ``source`` and the line number.
    """
    rows: list[tuple[tuple[str, ...], int]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        stack, _, count = line.rstrip().rpartition(" ")
        try:
            value = int(count)
        except ValueError:
            raise ReportError(
                f"{source}:{number}: folded line has no trailing sample count"
            ) from None
        rows.append((tuple(stack.split(";")) if stack else (), value))
    return rows


def _resolve(options: FlameOptions) -> str:
    """Validate ``options`` and name the renderer to use: "builtin" or "inferno"."""
    if options.colors not in tuple(Palette):
        raise ReportError(
            f"unknown flame graph palette {options.colors!r} (choose from {', '.join(Palette)})"
        )
    if options.width <= 2 * svg_builtin.XPAD:
        raise ReportError(f"flame graph width must exceed {2 * svg_builtin.XPAD} pixels")
    if not options.minwidth >= 0:
        raise ReportError("flame graph minwidth must be zero or more pixels")
    if options.renderer not in tuple(Renderer):
        raise ReportError(
            f"unknown flame graph renderer {options.renderer!r}"
            f" (choose from {', '.join(Renderer)})"
        )
    if options.renderer == "inferno":
        inferno.require()
        return "inferno"
    if options.renderer == "auto" and inferno.available():
        return "inferno"
    return "builtin"


class SvgReporter:
    """`--format svg`: an interactive flame graph."""

    name = "svg"
    binary = False
    options = ("lines", "flame")

    def render(self, profile: Profile, options: RenderOptions) -> str:
        """The flame graph SVG of a profile (units and sources in its tooltips and subtitle)."""
        from bee_report.reporters import folded

        stacks = folded.fold(profile, options.lines)
        unit = "ns" if profile.unit == "nanoseconds" else profile.unit
        return render_svg(sorted(stacks.items()), replace(
            options.flame, count_name=unit, subtitle=", ".join(profile.sources)))


REPORTER = SvgReporter()

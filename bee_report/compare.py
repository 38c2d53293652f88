"""`bee diff`: two sets of recordings through the report pipeline, then one diff output.

Diff outputs compare two profiles, so they are not reporters of the registry; their own
formats are :class:`DiffFormat`, rendered by :mod:`bee_report.reporters.diff`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from bee_contract.atomic import check_not_input
from bee_contract.errors import ReportError
from bee_report.filters import Filters, apply, validate
from bee_report.find.images import SymbolizeOptions
from bee_report.report import build_profile, emit
from bee_report.reporters.options import Correction, FlameOptions, Share, TopBy


class DiffFormat(StrEnum):
    """The outputs of `bee diff`."""

    TOP = "top"
    FOLDED = "folded"
    SVG = "svg"


@dataclass(frozen=True, slots=True)
class DiffOptions:
    """What `bee diff` was asked to do."""

    base: tuple[Path, ...]
    new: tuple[Path, ...]
    format: str = DiffFormat.TOP
    output: Path | None = None
    symbolize: SymbolizeOptions = field(default_factory=SymbolizeOptions)
    filters: Filters = field(default_factory=Filters)
    limit: int = 25
    by: str = TopBy.FUNCTION
    share: str = Share.SELF
    alpha: float = 0.05
    correction: str = Correction.BH
    normalize: bool = False
    ignore_comm: bool = False
    strip_hex: bool = False
    lines: bool = False
    flame: FlameOptions = field(default_factory=FlameOptions)
    #: --base-from/--base-to and --from/--to: each side's time window (None: all of it)
    base_window: tuple[str | None, str | None] = (None, None)
    new_window: tuple[str | None, str | None] = (None, None)


def run_diff(opts: DiffOptions) -> Path | None:
    """Compare two (sets of) recordings; returns the output path when one was written."""
    from bee_report.reporters import diff

    if opts.format not in tuple(DiffFormat):
        raise ReportError(f"--format {opts.format}: choose one of {', '.join(DiffFormat)}")
    validate(opts.filters)
    if opts.output is not None:
        check_not_input(opts.output, (*opts.base, *opts.new))
    base_profile = build_profile(opts.base, opts.symbolize)
    new_profile = base_profile if opts.new == opts.base else build_profile(
        opts.new, opts.symbolize)
    base = apply(base_profile, replace(opts.filters, time_from=opts.base_window[0],
                                       time_to=opts.base_window[1], time_prefix="base-"))
    new = apply(new_profile, replace(opts.filters, time_from=opts.new_window[0],
                                     time_to=opts.new_window[1]))
    text: str
    if opts.format == DiffFormat.TOP:
        text = diff.render_top(base, new, opts.limit, opts.by, share=opts.share,
                               alpha=opts.alpha, correction=opts.correction,
                               strip_hex=opts.strip_hex)
    elif opts.format == DiffFormat.FOLDED:
        text = diff.render_folded(base, new, normalize=opts.normalize,
                                  ignore_comm=opts.ignore_comm, lines=opts.lines,
                                  strip_hex=opts.strip_hex)
    else:
        f = opts.flame
        text = diff.render_svg(base, new, replace(
            f, title=f.title if f.title != "Flame Graph" else "Differential Flame Graph",
            count_name="ns" if new.unit == "nanoseconds" else new.unit,
            subtitle=f"{', '.join(base.sources)} -> {', '.join(new.sources)}",
        ), ignore_comm=opts.ignore_comm, lines=opts.lines, strip_hex=opts.strip_hex)
    return emit(text, opts.output)

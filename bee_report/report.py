"""`bee report`: read recordings, symbolize them, filter, and run one reporter."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from bee_contract import codec
from bee_contract.atomic import write_atomic
from bee_contract.errors import ReportError
from bee_contract.recording import Recording
from bee_report.filters import Filters, apply, validate
from bee_report.profile import Profile
from bee_report.symbolize import SymbolizeOptions, Symbolizer

FORMATS = ("folded", "top", "svg", "speedscope", "pprof", "timeline")


@dataclass(frozen=True, slots=True)
class SvgOptions:
    """Flame graph options passed through to the renderer."""

    title: str = "Flame Graph"
    colors: str = "bee"
    width: int = 1200
    minwidth: float = 0.1
    reverse: bool = False
    inverted: bool = False
    renderer: str = "auto"


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What `bee report` was asked to do."""

    files: tuple[Path, ...]
    format: str = "folded"
    output: Path | None = None
    symbolize: SymbolizeOptions = field(default_factory=SymbolizeOptions)
    filters: Filters = field(default_factory=Filters)
    limit: int = 25
    by: str = "function"
    lines: bool = False
    svg: SvgOptions = field(default_factory=SvgOptions)


def load(files: tuple[Path, ...]) -> list[tuple[str, Recording]]:
    """Read and validate every recording (one line naming the file on failure)."""
    if not files:
        raise ReportError("no recording given")
    return [(str(f), codec.read(f)) for f in files]


def build_profile(files: tuple[Path, ...], opts: SymbolizeOptions) -> Profile:
    """Recordings to one symbolized Profile."""
    recordings = load(files)
    for d in opts.symbol_dirs:
        if not d.exists():
            raise ReportError(f"{d}: symbols folder does not exist")
    sym = Symbolizer(opts)
    try:
        return sym.profile(recordings)
    finally:
        sym.close()


def render(profile: Profile, opts: ReportOptions) -> str | bytes:
    """The output of the chosen format (bytes for binary formats)."""
    if opts.format == "folded":
        from bee_report.reporters import folded

        return folded.render(profile, opts.lines)
    if opts.format == "top":
        from bee_report.reporters import top

        if opts.by not in top.BY_CHOICES:
            raise ReportError(f"--by {opts.by}: choose one of {', '.join(top.BY_CHOICES)}")
        return top.render(profile, opts.by, opts.limit)
    if opts.format == "svg":
        from bee_report.reporters import flamegraph, folded

        stacks = folded.fold(profile, opts.lines)
        s = opts.svg
        unit = "ns" if profile.unit == "nanoseconds" else profile.unit
        return flamegraph.render_svg(sorted(stacks.items()), flamegraph.FlameOptions(
            title=s.title, colors=s.colors, width=s.width, minwidth=s.minwidth,
            reverse=s.reverse, inverted=s.inverted, count_name=unit, renderer=s.renderer,
            subtitle=", ".join(profile.sources),
        ))
    if opts.format == "speedscope":
        from bee_report.reporters import speedscope

        return speedscope.render(profile, per_thread=opts.filters.per_thread, lines=opts.lines)
    if opts.format == "pprof":
        from bee_report.reporters import pprof

        period = 1_000_000_000 // profile.frequency_hz if profile.frequency_hz else 0
        return pprof.render(profile, period_ns=period, duration_nanos=profile.duration_ns,
                            time_nanos=profile.start_time_ns)
    if opts.format == "timeline":
        from bee_report.reporters import timeline

        s = opts.svg
        return timeline.render(profile, timeline.TimelineOptions(
            title=s.title if s.title != "Flame Graph" else "Timeline", colors=s.colors,
            width=s.width, minwidth=s.minwidth, lines=opts.lines,
        ))
    raise ReportError(f"--format {opts.format}: choose one of {', '.join(FORMATS)}")


def emit(data: str | bytes, output: Path | None) -> Path | None:
    """Write to `output` atomically, or to stdout; returns the path written."""
    if isinstance(data, str) and data and not data.endswith("\n"):
        data += "\n"
    raw = data.encode() if isinstance(data, str) else data
    if output is None:
        if isinstance(data, bytes) and sys.stdout.isatty():
            raise ReportError("binary output: give a file with -o")
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return None
    write_atomic(output, raw, mode=0o644)
    return output


def run(opts: ReportOptions) -> Path | None:
    """Produce the report; returns the output path when one was written."""
    if opts.format not in FORMATS:
        raise ReportError(f"--format {opts.format}: choose one of {', '.join(FORMATS)}")
    validate(opts.filters)
    profile = apply(build_profile(opts.files, opts.symbolize), opts.filters)
    return emit(render(profile, opts), opts.output)


@dataclass(frozen=True, slots=True)
class DiffOptions:
    """What `bee diff` was asked to do."""

    base: tuple[Path, ...]
    new: tuple[Path, ...]
    format: str = "top"
    output: Path | None = None
    symbolize: SymbolizeOptions = field(default_factory=SymbolizeOptions)
    filters: Filters = field(default_factory=Filters)
    limit: int = 25
    by: str = "function"
    share: str = "self"
    alpha: float = 0.05
    correction: str = "bh"
    normalize: bool = False
    ignore_comm: bool = False
    strip_hex: bool = False
    lines: bool = False
    svg: SvgOptions = field(default_factory=SvgOptions)
    #: --base-from/--base-to and --from/--to: each side's time window (None: all of it)
    base_window: tuple[str | None, str | None] = (None, None)
    new_window: tuple[str | None, str | None] = (None, None)


DIFF_FORMATS = ("top", "folded", "svg")


def run_diff(opts: DiffOptions) -> Path | None:
    """Compare two (sets of) recordings; returns the output path when one was written."""
    from bee_report.reporters import diff
    from bee_report.reporters.flamegraph import FlameOptions

    if opts.format not in DIFF_FORMATS:
        raise ReportError(f"--format {opts.format}: choose one of {', '.join(DIFF_FORMATS)}")
    validate(opts.filters)
    base_profile = build_profile(opts.base, opts.symbolize)
    new_profile = base_profile if opts.new == opts.base else build_profile(
        opts.new, opts.symbolize)
    base = apply(base_profile, replace(opts.filters, time_from=opts.base_window[0],
                                       time_to=opts.base_window[1], time_prefix="base-"))
    new = apply(new_profile, replace(opts.filters, time_from=opts.new_window[0],
                                     time_to=opts.new_window[1]))
    text: str
    if opts.format == "top":
        text = diff.render_top(base, new, opts.limit, opts.by, share=opts.share,
                               alpha=opts.alpha, correction=opts.correction,
                               strip_hex=opts.strip_hex)
    elif opts.format == "folded":
        text = diff.render_folded(base, new, normalize=opts.normalize,
                                  ignore_comm=opts.ignore_comm, lines=opts.lines,
                                  strip_hex=opts.strip_hex)
    else:
        s = opts.svg
        text = diff.render_svg(base, new, FlameOptions(
            title=s.title if s.title != "Flame Graph" else "Differential Flame Graph",
            colors=s.colors, width=s.width, minwidth=s.minwidth, reverse=s.reverse,
            inverted=s.inverted, renderer=s.renderer,
            count_name="ns" if new.unit == "nanoseconds" else new.unit,
            subtitle=f"{', '.join(base.sources)} -> {', '.join(new.sources)}",
        ), ignore_comm=opts.ignore_comm, lines=opts.lines, strip_hex=opts.strip_hex)
    return emit(text, opts.output)

"""`bee diff`: compare two recordings by symbolized stacks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bee.commands.choices import choice
from bee.commands.options import (
    CommOpt,
    ExcludeOpt,
    FocusOpt,
    LimitOpt,
    NoCacheOpt,
    OfflineOpt,
    OutputOpt,
    RendererOpt,
    SymbolsOpt,
    TitleOpt,
    ToOpt,
    symbolize_options,
)
from bee_report.compare import DiffFormat
from bee_report.reporters.options import Correction, Renderer, Share, TopBy


def diff(
    base: Annotated[Path, typer.Argument(help="The baseline recording.")],
    new: Annotated[Path | None, typer.Argument(
        help="The recording to compare with it (default: BASE again, for two windows of "
        "one recording).")] = None,
    format: Annotated[DiffFormat | None, typer.Option(
        "--format", "-f", click_type=choice(DiffFormat),
        help="Output format (default: top on a terminal, else folded).",
    )] = None,
    base_from: Annotated[str | None, typer.Option(
        "--base-from", metavar="TIME", help="Baseline window start (as --from).")] = None,
    base_to: Annotated[str | None, typer.Option(
        "--base-to", metavar="TIME", help="Baseline window end (as --to).")] = None,
    time_from: Annotated[str | None, typer.Option(
        "--from", metavar="TIME", help="Window of NEW from this time: seconds from its "
        "start (12.5) or a date and time (2026-11-30T12:03:05, UTC unless it has a zone).")
    ] = None,
    time_to: ToOpt = None,
    split: Annotated[str | None, typer.Option(
        "--split", metavar="TIME", help="Before vs after this moment: the baseline is the "
        "recording up to TIME, the new side from TIME on.")] = None,
    output: OutputOpt = None,
    symbols: SymbolsOpt = None,
    limit: LimitOpt = 25,
    by: Annotated[TopBy, typer.Option(
        click_type=choice(TopBy), help="What a row of the top table counts.")] = TopBy.FUNCTION,
    share: Annotated[Share, typer.Option(
        click_type=choice(Share), help="Test the self or total share.")] = Share.SELF,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    correction: Annotated[Correction, typer.Option(
        click_type=choice(Correction),
        help="Multiple-comparison correction (bh: Benjamini-Hochberg).")] = Correction.BH,
    normalize: Annotated[bool, typer.Option(
        help="folded: scale base counts to the new total (difffolded -n).")] = False,
    ignore_comm: Annotated[bool, typer.Option(
        "--ignore-comm", help="Match stacks across different process names.")] = False,
    strip_hex: Annotated[bool, typer.Option(
        "--strip-hex", help="Ignore hex offsets of unnamed frames (difffolded -s).")] = False,
    comm: CommOpt = None,
    focus: FocusOpt = None,
    exclude: ExcludeOpt = None,
    title: TitleOpt = "Flame Graph",
    renderer: RendererOpt = Renderer.AUTO,
    no_cache: NoCacheOpt = False,
    offline: OfflineOpt = False,
) -> None:
    """Compare two recordings, or two windows of one, with significance for the top table.

    bee diff before.bee after.bee; bee diff rec.bee --split 12.5 (before vs after 12.5 s);
    bee diff rec.bee --base-from 0 --base-to 5 --from 5 --to 10.
    """
    from bee_contract.errors import ReportError
    from bee_report.compare import DiffOptions, run_diff
    from bee_report.filters import Filters
    from bee_report.reporters.options import FlameOptions

    if split is not None:
        if any(t is not None for t in (base_from, base_to, time_from, time_to)):
            raise ReportError("--split cannot be combined with --base-from/--base-to/--from/--to")
        if new is not None and new != base:
            raise ReportError("--split compares two windows of one recording: give one file")
        base_to, time_from = split, split
    elif new is None and all(t is None for t in (base_from, base_to, time_from, time_to)):
        raise ReportError("one recording: give --split TIME or windows (--base-from/--base-to, "
                          "--from/--to) to compare two parts of it, or a second recording")

    fmt = format or ("top" if output is None and sys.stdout.isatty() else "folded")
    written = run_diff(DiffOptions(
        base=(base,), new=(new or base,), format=fmt, output=output,
        base_window=(base_from, base_to), new_window=(time_from, time_to),
        symbolize=symbolize_options(symbols, no_cache, offline),
        filters=Filters(comms=tuple(comm or ()), focus=focus, exclude=exclude),
        limit=limit, by=by, share=share, alpha=alpha, correction=correction,
        normalize=normalize, ignore_comm=ignore_comm, strip_hex=strip_hex,
        flame=FlameOptions(title=title, renderer=renderer),
    ))
    if written is not None:
        typer.echo(f"Wrote {written}", err=True)

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
    symbolize_options,
)
from bee_report.compare import DiffFormat
from bee_report.reporters.options import Correction, Renderer, Share, TopBy


def diff(
    base: Annotated[Path, typer.Argument(help="The baseline recording.")],
    new: Annotated[Path, typer.Argument(help="The recording to compare with it.")],
    format: Annotated[DiffFormat | None, typer.Option(
        "--format", "-f", click_type=choice(DiffFormat),
        help="Output format (default: top on a terminal, else folded).",
    )] = None,
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
    """Compare two recordings by symbolized stacks, with significance for the top table."""
    from bee_report.compare import DiffOptions, run_diff
    from bee_report.filters import Filters
    from bee_report.reporters.options import FlameOptions

    fmt = format or ("top" if output is None and sys.stdout.isatty() else "folded")
    written = run_diff(DiffOptions(
        base=(base,), new=(new,), format=fmt, output=output,
        symbolize=symbolize_options(symbols, no_cache, offline),
        filters=Filters(comms=tuple(comm or ()), focus=focus, exclude=exclude),
        limit=limit, by=by, share=share, alpha=alpha, correction=correction,
        normalize=normalize, ignore_comm=ignore_comm, strip_hex=strip_hex,
        flame=FlameOptions(title=title, renderer=renderer),
    ))
    if written is not None:
        typer.echo(f"Wrote {written}", err=True)

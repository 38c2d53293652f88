"""`bee diff`: compare two recordings by symbolized stacks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

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


def diff(
    base: Annotated[Path, typer.Argument(help="The baseline recording.")],
    new: Annotated[Path, typer.Argument(help="The recording to compare with it.")],
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help="top | folded | svg (default: top on a terminal, else folded).",
    )] = None,
    output: OutputOpt = None,
    symbols: SymbolsOpt = None,
    limit: LimitOpt = 25,
    by: Annotated[str, typer.Option(help="Top table by function | module.")] = "function",
    share: Annotated[str, typer.Option(help="Test the self or total share.")] = "self",
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    correction: Annotated[str, typer.Option(
        help="Multiple-comparison correction: bh | holm | none.")] = "bh",
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
    renderer: RendererOpt = "auto",
    no_cache: NoCacheOpt = False,
    offline: OfflineOpt = False,
) -> None:
    """Compare two recordings by symbolized stacks, with significance for the top table."""
    from bee_report.filters import Filters
    from bee_report.report import DiffOptions, SvgOptions, run_diff

    fmt = format or ("top" if output is None and sys.stdout.isatty() else "folded")
    written = run_diff(DiffOptions(
        base=(base,), new=(new,), format=fmt, output=output,
        symbolize=symbolize_options(symbols, no_cache, offline),
        filters=Filters(comms=tuple(comm or ()), focus=focus, exclude=exclude),
        limit=limit, by=by, share=share, alpha=alpha, correction=correction,
        normalize=normalize, ignore_comm=ignore_comm, strip_hex=strip_hex,
        svg=SvgOptions(title=title, renderer=renderer),
    ))
    if written is not None:
        typer.echo(f"Wrote {written}", err=True)

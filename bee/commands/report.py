"""`bee report`: symbolize recordings and render one output format.

No ``from __future__ import annotations`` here: typer reads the options from the
signature's annotations, and as strings it would compile and evaluate each of them (some
60 small compiles, ~2 ms of every run); as objects they are ready.
"""

import sys
from pathlib import Path
from typing import Annotated

import typer

from bee.commands import collector_paused
from bee.commands.choices import choice
from bee.commands.options import (
    CommOpt,
    ExcludeOpt,
    FocusOpt,
    FromOpt,
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
from bee_report.reporters.options import Palette, Renderer, TopBy
from bee_report.reporters.registry import Format


def report(
    files: Annotated[list[Path], typer.Argument(help="Recording file(s); several are merged.")],
    format: Annotated[Format | None, typer.Option(
        "--format", "-f", click_type=choice(Format),
        help="Output format (default: top on a terminal, else folded).",
    )] = None,
    output: OutputOpt = None,
    symbols: SymbolsOpt = None,
    limit: LimitOpt = 25,
    by: Annotated[TopBy, typer.Option(
        click_type=choice(TopBy), help="What a row of the top table counts.")] = TopBy.FUNCTION,
    lines: Annotated[bool, typer.Option(help="Add file:line to frames.")] = False,
    no_inline: Annotated[bool, typer.Option(
        "--no-inline", help="Hide inlined frames.")] = False,
    time_from: FromOpt = None,
    time_to: ToOpt = None,
    pid: Annotated[list[int] | None, typer.Option(help="Only these processes.")] = None,
    tid: Annotated[list[int] | None, typer.Option(help="Only these threads.")] = None,
    comm: CommOpt = None,
    cpu: Annotated[list[int] | None, typer.Option(help="Only samples taken on these CPUs.")] = None,
    user_only: Annotated[bool, typer.Option("--user-only", help="Drop kernel frames.")] = False,
    kernel_only: Annotated[bool, typer.Option(
        "--kernel-only", help="Drop user frames.")] = False,
    focus: FocusOpt = None,
    exclude: ExcludeOpt = None,
    per_cpu: Annotated[bool, typer.Option("--per-cpu", help="A root frame per CPU.")] = False,
    per_thread: Annotated[bool, typer.Option(
        "--per-thread", help="A root frame per thread.")] = False,
    per_process: Annotated[bool, typer.Option(
        "--per-process", help="A root frame per process.")] = False,
    title: TitleOpt = "Flame Graph",
    colors: Annotated[Palette, typer.Option(
        click_type=choice(Palette), help="SVG palette (bee: by frame kind).")] = Palette.BEE,
    width: Annotated[int, typer.Option(help="SVG width in pixels.")] = 1200,
    minwidth: Annotated[float, typer.Option(help="SVG: hide frames narrower (px).")] = 0.1,
    reverse: Annotated[bool, typer.Option(help="SVG: reverse stacks.")] = False,
    inverted: Annotated[bool, typer.Option(help="SVG: icicle graph.")] = False,
    renderer: RendererOpt = Renderer.AUTO,
    no_cache: NoCacheOpt = False,
    offline: OfflineOpt = False,
) -> None:
    """Symbolize recordings offline and render them (table, folded, SVG, exports)."""
    with collector_paused():
        from bee_report.filters import Filters
        from bee_report.report import ReportOptions
        from bee_report.report import run as run_report
        from bee_report.reporters.options import FlameOptions, RenderOptions

        fmt = format or ("top" if output is None and sys.stdout.isatty() else "folded")
        written = run_report(ReportOptions(
            files=tuple(files), format=fmt, output=output,
            symbolize=symbolize_options(symbols, no_cache, offline,
                                         dwarf=lines or not no_inline),
            filters=Filters(
                pids=tuple(pid or ()), tids=tuple(tid or ()), comms=tuple(comm or ()),
                cpus=tuple(cpu or ()), user_only=user_only, kernel_only=kernel_only,
                focus=focus, exclude=exclude, inline=not no_inline, per_cpu=per_cpu,
                per_thread=per_thread, per_process=per_process,
                time_from=time_from, time_to=time_to,
            ),
            render_options=RenderOptions(
                limit=limit, by=by, lines=lines, per_thread=per_thread,
                flame=FlameOptions(title=title, colors=colors, width=width, minwidth=minwidth,
                                   reverse=reverse, inverted=inverted, renderer=renderer),
            ),
        ))
    if written is not None:
        typer.echo(f"Wrote {written}", err=True)

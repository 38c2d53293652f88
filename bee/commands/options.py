"""Options shared by the report-side commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bee.commands.choices import choice
from bee_report.reporters.options import Renderer

if TYPE_CHECKING:
    from bee_report.find.images import SymbolizeOptions


NoCacheOpt = Annotated[bool, typer.Option(
    "--no-cache", help="Bypass the per-build-id symbol cache ($XDG_CACHE_HOME/bee).")]
OfflineOpt = Annotated[bool, typer.Option(
    "--offline", help="Never download debug info from DEBUGINFOD_URLS.")]


def symbolize_options(symbols: list[Path] | None, no_cache: bool, offline: bool,
                       dwarf: bool = True) -> SymbolizeOptions:
    """Symbolization options from the shared CLI flags (archives unpacked once)."""
    from bee_contract.cachehome import user_cache_dir
    from bee_report.find.images import SymbolizeOptions

    cache = user_cache_dir()
    dirs = tuple(symbols or ())
    if any(not p.is_dir() for p in dirs):  # archives (tarfile and friends load only then)
        from bee_report.find.unpack import resolve_symbol_dirs

        dirs = resolve_symbol_dirs(dirs, cache)
    return SymbolizeOptions(symbol_dirs=dirs, dwarf=dwarf,
                            cache_dir=None if no_cache else cache, offline=offline)


SymbolsOpt = Annotated[
    list[Path] | None,
    typer.Option("--symbols", "-s", help="Folder (or archive) of binaries and debug files; "
                 "matched by build-id. Repeatable."),
]

OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write here instead of stdout.")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", help="Rows in the top table.")]
CommOpt = Annotated[list[str] | None, typer.Option(
    help="Only processes or threads with this name.")]
FocusOpt = Annotated[str | None, typer.Option(
    help="Keep stacks through a frame matching this regex.")]
ExcludeOpt = Annotated[str | None, typer.Option(
    help="Drop stacks through a frame matching this regex.")]
TitleOpt = Annotated[str, typer.Option(help="SVG title.")]
RendererOpt = Annotated[Renderer, typer.Option(
    click_type=choice(Renderer), help="SVG renderer (auto: inferno if installed).")]
_TIME_HELP = ("seconds from the recording's start (12.5), or a date and time "
              "(2026-11-30T12:03:05, UTC unless it has a zone; 12:03:05 on its first day)")
FromOpt = Annotated[str | None, typer.Option(
    "--from", metavar="TIME", help=f"Only samples from this time on: {_TIME_HELP}.")]
ToOpt = Annotated[str | None, typer.Option(
    "--to", metavar="TIME", help="Only samples before this time (as --from).")]

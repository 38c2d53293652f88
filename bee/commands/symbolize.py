"""`bee symbolize`: addresses to names and lines, in addr2line's layout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bee.commands.options import NoCacheOpt, OfflineOpt, SymbolsOpt, symbolize_options
from bee_contract.text import for_terminal


def symbolize(
    addresses: Annotated[list[str] | None, typer.Argument(
        help="ELF virtual addresses in hex (default: one per line on stdin).")] = None,
    exe: Annotated[Path, typer.Option("--exe", "-e", help="The binary.")] = Path("a.out"),
    symbols: SymbolsOpt = None,
    no_inline: Annotated[bool, typer.Option(
        "--no-inline", help="Only the outermost function.")] = False,
    no_cache: NoCacheOpt = False,
    offline: OfflineOpt = False,
) -> None:
    """Print function and file:line per address, in the layout of addr2line -a -f -i -C."""
    from bee_report.addr2line import addr2line_lines, parse_address

    source = addresses if addresses else (line for line in sys.stdin if line.strip())
    opts = symbolize_options(symbols, no_cache, offline)
    out = sys.stdout
    addrs = (parse_address(a) for a in source)
    for line in addr2line_lines(exe, addrs, opts, inlines=not no_inline):
        out.write(for_terminal(line) + "\n")
    out.flush()

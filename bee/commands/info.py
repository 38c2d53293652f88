"""`bee info`: what a recording holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bee.commands.options import FromOpt, ToOpt


def info(
    file: Annotated[Path, typer.Argument(help="Recording file.")],
    time_from: FromOpt = None,
    time_to: ToOpt = None,
) -> None:
    """Show a recording's header, counts, samples over time, processes and binaries."""
    from bee_report.info import describe

    typer.echo(describe(file, time_from, time_to), nl=False)

"""`bee info`: what a recording holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def info(
    file: Annotated[Path, typer.Argument(help="Recording file.")],
) -> None:
    """Show a recording's header, counts, processes and binaries."""
    from bee_report.info import describe

    typer.echo(describe(file), nl=False)

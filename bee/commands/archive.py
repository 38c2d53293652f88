"""`bee archive`: pack the binaries and debug files a recording needs (target side)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def archive(
    recording: Annotated[Path, typer.Argument(help="Recording file.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Archive to write (default: RECORDING.tar.gz).")] = None,
) -> None:
    """Pack exactly the ELF files the samples hit, with their debug files, into a .tar.gz."""
    from bee_record.archive import archive as run

    out = output or recording.with_name(recording.name + ".tar.gz")
    result = run(recording, out)
    typer.echo(result.summary(), err=True)
    for m in result.missing[:10]:
        typer.echo(f"bee: warning: {m.path}: not archived: {m.reason}", err=True)
    typer.echo(f"Use it with: bee report {recording} --symbols {out}", err=True)

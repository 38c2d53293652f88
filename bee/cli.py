"""The `bee` command: registers one module per command (see bee.commands).

Each command imports its stage lazily, so `bee record` never loads report code and
`bee report` never loads bcc. A BeeError is caught once, here, and printed as one line.
"""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from bee.commands import archive, diff, info, record, report, symbolize
from bee_contract.errors import BeeError


class _BeeGroup(TyperGroup):
    """Runs a command and turns a BeeError into one line on stderr and its exit code."""

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except BeeError as exc:
            typer.echo(f"bee: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("bee: interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as exc:  # an environment problem not caught closer to its cause
            where = f": {exc.filename}" if exc.filename else ""
            typer.echo(f"bee: {exc.strerror or exc}{where}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_BeeGroup,
    name="bee",
    help="bee: an eBPF CPU profiler. Record on the target, report anywhere.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _version(value: bool) -> None:
    if value:
        from bee_contract import __version__

        typer.echo(f"bee {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """bee: an eBPF CPU profiler. Record on the target, report anywhere."""


app.command(context_settings={"allow_interspersed_args": False})(record.record)
app.command()(report.report)
app.command()(diff.diff)
app.command()(symbolize.symbolize)
app.command()(info.info)
app.command()(archive.archive)


def main() -> None:
    """Entry point of the `bee` console script."""
    app()


if __name__ == "__main__":
    main()

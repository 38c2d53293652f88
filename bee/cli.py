"""The `bee` command: registers one module per command (see bee.commands).

Each command imports its stage lazily, so `bee record` never loads report code and
`bee report` never loads bcc. A BeeError is caught once, here, and printed as one line.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Annotated

import typer
from typer.core import TyperGroup

from bee.commands import archive, diff, info, record, report, symbolize
from bee_contract.errors import BeeError, Terminated
from bee_contract.text import for_terminal

#: Signals that end a command like Ctrl-C does: as an exception, so every cleanup runs
#: (temporary files of outputs, downloads and extractions). `bee record` handles them
#: itself while recording (they stop it and the file is written).
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated while a command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, _terminate) for sig in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class _BeeGroup(TyperGroup):
    """Runs a command and turns a BeeError into one line on stderr and its exit code."""

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            with _signals_raise():
                return super().invoke(ctx)
        except BeeError as exc:
            typer.echo(f"bee: {for_terminal(str(exc))}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except Terminated as exc:
            typer.echo(f"bee: terminated by {signal.Signals(exc.signum).name}", err=True)
            raise typer.Exit(128 + exc.signum) from None
        except KeyboardInterrupt:
            typer.echo("bee: interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as exc:  # an environment problem not caught closer to its cause
            where = f": {exc.filename}" if exc.filename else ""
            typer.echo(for_terminal(f"bee: {exc.strerror or exc}{where}"), err=True)
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

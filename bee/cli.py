"""The `bee` command: one module per command (see bee.commands), each loaded on demand.

A command's module (and so its stage) is imported only when that command runs or help
lists it: `bee record` never loads report code and `bee report` never loads bcc. Bad
input is one line on stderr: a BeeError, a usage error or an environment error is caught
once, here.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading
from collections.abc import Iterator
from importlib import import_module
from types import FrameType

from bee.commands import collector_paused

# typing, click and typer make some 25,000 objects that live as long as the process and
# no garbage: loaded with the collector paused, and then frozen (see collector_paused)
with collector_paused():
    from typing import Annotated, Any

    import click
    import typer
    from typer.core import TyperGroup

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


#: Command name -> click context settings; the function is bee.commands.NAME.NAME.
COMMANDS: dict[str, dict[str, Any]] = {
    "record": {"allow_interspersed_args": False},
    "report": {},
    "diff": {},
    "symbolize": {},
    "info": {},
    "archive": {},
}
_HELP = {"help_option_names": ["-h", "--help"]}


def _load(name: str) -> click.Command:
    """The click command of bee.commands.NAME (help printed literally: no markup)."""
    module = import_module(f"bee.commands.{name}")
    one = typer.Typer(rich_markup_mode=None, add_completion=False,
                      pretty_exceptions_enable=False)
    one.command(name=name, context_settings={**_HELP, **COMMANDS[name]})(getattr(module, name))
    return typer.main.get_command(one)


class _BeeGroup(TyperGroup):
    """Loads commands on demand; turns errors into one line on stderr and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Command names, in the order help shows them."""
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command called `cmd_name`, imported now (None if there is none)."""
        return _load(cmd_name) if cmd_name in COMMANDS else None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the chosen command; every error it raises becomes one line."""
        try:
            with _signals_raise():
                return super().invoke(ctx)
        except BeeError as exc:
            typer.echo(f"bee: {for_terminal(str(exc))}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except Terminated as exc:
            typer.echo(f"bee: terminated by {signal.Signals(exc.signum).name}", err=True)
            raise typer.Exit(128 + exc.signum) from None
        except click.UsageError as exc:  # bad options: one line, not click's usage block
            typer.echo(f"bee: {for_terminal(exc.format_message())}", err=True)
            raise typer.Exit(exc.exit_code) from None
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
    rich_markup_mode=None,
    context_settings=_HELP,
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


def main() -> None:
    """Entry point of the `bee` console script."""
    try:
        app()
    finally:
        # The process ends here. Python's last cycle collection at exit would walk every
        # object of every loaded module (10-15 ms, a tenth of a short report); frozen, they
        # are left to the operating system like the rest of the process's memory.
        gc.freeze()


if __name__ == "__main__":
    main()

"""The `bee` command: thin typer commands that wire options to bee_record or bee_report.

Each command imports its stage lazily, so `bee record` never loads report code and
`bee report` never loads bcc. A BeeError is caught once, here, and printed as one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from bee_record.errors import BeeError


class _BeeGroup(TyperGroup):
    """Runs a command and turns a BeeError into one line on stderr and its exit code."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except BeeError as exc:
            typer.echo(f"bee: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("bee: interrupted", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_BeeGroup,
    name="bee",
    help="bee: an eBPF CPU profiler. Record on the target, report anywhere.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

SymbolsOpt = Annotated[
    list[Path] | None,
    typer.Option("--symbols", "-s", help="Folder (or archive) of binaries and debug files; "
                 "matched by build-id. Repeatable."),
]


@app.command(context_settings={"allow_interspersed_args": False})
def record(
    command: Annotated[list[str] | None, typer.Argument(
        help="Command to start and record until it exits (after --).")] = None,
    pid: Annotated[list[int] | None, typer.Option(
        "--pid", "-p", help="Record this process and its children. Repeatable.")] = None,
    frequency: Annotated[int, typer.Option("--frequency", "-F", help="Samples per second per CPU.")] = 99,
    duration: Annotated[float | None, typer.Option(
        "--duration", "-d", help="Seconds to record (default: until Ctrl-C, or the targets exit).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Recording file (default: bee-HOST-DATE-TIME.bee).")] = None,
    no_cmdline: Annotated[bool, typer.Option(
        "--no-cmdline", help="Do not store command lines (they can hold secrets).")] = False,
    user_only: Annotated[bool, typer.Option("--user-only", help="Collect user stacks only.")] = False,
    kernel_only: Annotated[bool, typer.Option("--kernel-only", help="Collect kernel stacks only.")] = False,
    include_idle: Annotated[bool, typer.Option("--include-idle", help="Also sample the idle task.")] = False,
    stack_storage_size: Annotated[int, typer.Option(
        help="Unique stacks the kernel can hold between drains.")] = 16384,
    counts_size: Annotated[int, typer.Option(help="Unique sample keys between drains.")] = 40960,
    drain_interval: Annotated[float, typer.Option(help="Seconds between drains of kernel maps.")] = 1.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Record stacks with BPF into one compact file. No symbolization happens here."""
    from bee_record.record import RecordOptions
    from bee_record.record import record as run
    from bee_record.sampler import SamplerOptions

    if user_only and kernel_only:
        raise BeeError("--user-only and --kernel-only exclude each other")
    opts = RecordOptions(
        output=output, pids=tuple(pid or ()), command=tuple(command or ()),
        frequency=frequency, duration=duration, keep_cmdline=not no_cmdline,
        drain_interval=drain_interval, quiet=quiet, argv=tuple(sys.argv),
        sampler=SamplerOptions(
            user_stacks=not kernel_only, kernel_stacks=not user_only, include_idle=include_idle,
            stack_storage_size=stack_storage_size, counts_size=counts_size,
        ),
    )
    result = run(opts)
    if not quiet:
        typer.echo(f"Wrote {result.path} ({result.samples} samples, {result.processes} processes, "
                   f"{result.lost} lost)", err=True)
        if result.lost_hints:
            typer.echo(f"hint: some data was lost; consider {', '.join(result.lost_hints)}",
                       err=True)
        typer.echo(f"View it with: bee report {result.path}", err=True)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command()
def report(
    files: Annotated[list[Path], typer.Argument(help="Recording file(s); several are merged.")],
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help="folded | top (default: top on a terminal, else folded).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    symbols: SymbolsOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Rows in the top table.")] = 25,
    by: Annotated[str, typer.Option(help="Top table by function | module.")] = "function",
) -> None:
    """Symbolize recordings offline and print folded stacks or a top table."""
    from bee_report.report import ReportOptions
    from bee_report.report import run as run_report

    fmt = format or ("top" if output is None and sys.stdout.isatty() else "folded")
    written = run_report(ReportOptions(
        files=tuple(files), format=fmt, output=output, symbol_dirs=tuple(symbols or ()),
        limit=limit, by=by,
    ))
    if written is not None:
        typer.echo(f"Wrote {written}", err=True)


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="Recording file.")],
) -> None:
    """Show a recording's header, counts, processes and binaries."""
    from bee_report.info import describe

    typer.echo(describe(file), nl=False)


def main() -> None:
    """Entry point of the `bee` console script."""
    app()


if __name__ == "__main__":
    main()

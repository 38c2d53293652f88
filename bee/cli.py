"""The `bee` command: thin typer commands that wire options to bee_record or bee_report.

Each command imports its stage lazily, so `bee record` never loads report code and
`bee report` never loads bcc. A BeeError is caught once, here, and printed as one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from bee_record.errors import BeeError

if TYPE_CHECKING:
    from bee_report.symbolize import SymbolizeOptions


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

NoCacheOpt = Annotated[bool, typer.Option(
    "--no-cache", help="Bypass the per-build-id symbol cache ($XDG_CACHE_HOME/bee).")]
OfflineOpt = Annotated[bool, typer.Option(
    "--offline", help="Never download debug info from DEBUGINFOD_URLS.")]


def _symbolize_options(symbols: list[Path] | None, no_cache: bool, offline: bool,
                       dwarf: bool = True) -> SymbolizeOptions:
    from bee_report.symbolize import SymbolizeOptions, default_cache_dir
    from bee_report.unpack import resolve_symbol_dirs

    cache = default_cache_dir()
    dirs = resolve_symbol_dirs(symbols or (), cache)
    return SymbolizeOptions(symbol_dirs=dirs, dwarf=dwarf,
                            cache_dir=None if no_cache else cache, offline=offline)


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
    frequency: Annotated[int, typer.Option(
        "--frequency", "-F", help="Samples per second per CPU.")] = 99,
    mode: Annotated[str, typer.Option(
        help="cpu (on-CPU samples) | offcpu (blocked time, sched_switch) | wall (both, in ns)."
    )] = "cpu",
    min_block: Annotated[int, typer.Option(
        help="offcpu/wall: ignore blocks shorter than this many microseconds.")] = 1,
    max_block: Annotated[int | None, typer.Option(
        help="offcpu/wall: ignore blocks longer than this many microseconds.")] = None,
    event: Annotated[list[str] | None, typer.Option(
        "--event", "-e", help="Count a stack at each hit: tracepoint:CAT:NAME, "
        "uprobe:PATH:SYMBOL, uretprobe:PATH:SYMBOL, kprobe:FUNC. Repeatable.")] = None,
    cgroup: Annotated[Path | None, typer.Option(
        help="Only record tasks in this cgroup v2 (path under /sys/fs/cgroup).")] = None,
    rotate: Annotated[float | None, typer.Option(
        help="Write a numbered series of complete files, one per this many seconds.")] = None,
    duration: Annotated[float | None, typer.Option(
        "--duration", "-d",
        help="Seconds to record (default: until Ctrl-C, or the targets exit).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Recording file (default: bee-HOST-DATE-TIME.bee).")] = None,
    no_cmdline: Annotated[bool, typer.Option(
        "--no-cmdline", help="Do not store command lines (they can hold secrets).")] = False,
    user_only: Annotated[bool, typer.Option(
        "--user-only", help="Collect user stacks only.")] = False,
    kernel_only: Annotated[bool, typer.Option(
        "--kernel-only", help="Collect kernel stacks only.")] = False,
    include_idle: Annotated[bool, typer.Option(
        "--include-idle", help="Also sample the idle task.")] = False,
    stack_storage_size: Annotated[int, typer.Option(
        help="Unique stacks the kernel can hold between drains.")] = 16384,
    counts_size: Annotated[int, typer.Option(help="Unique sample keys between drains.")] = 40960,
    drain_interval: Annotated[float, typer.Option(
        help="Seconds between drains of kernel maps.")] = 1.0,
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
        frequency=frequency, mode=mode, min_block_us=min_block, max_block_us=max_block,
        rotate=rotate, events=tuple(event or ()), cgroup=cgroup,
        duration=duration, keep_cmdline=not no_cmdline,
        drain_interval=drain_interval, quiet=quiet, argv=tuple(sys.argv),
        sampler=SamplerOptions(
            user_stacks=not kernel_only, kernel_stacks=not user_only, include_idle=include_idle,
            stack_storage_size=stack_storage_size, counts_size=counts_size,
        ),
    )
    result = run(opts)
    if not quiet:
        where = result.path if len(result.files) == 1 else (
            f"{len(result.files)} files {result.files[0]} .. {result.files[-1]}")
        typer.echo(f"Wrote {where} ({result.samples} samples, {result.processes} processes, "
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
        "--format", "-f",
        help="folded | top | svg | speedscope | pprof (default: top on a terminal, else folded).",
    )] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here instead of stdout.")] = None,
    symbols: SymbolsOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Rows in the top table.")] = 25,
    by: Annotated[str, typer.Option(help="Top table by function | module.")] = "function",
    lines: Annotated[bool, typer.Option(help="Add file:line to frames.")] = False,
    no_inline: Annotated[bool, typer.Option(
        "--no-inline", help="Hide inlined frames.")] = False,
    pid: Annotated[list[int] | None, typer.Option(help="Only these processes.")] = None,
    tid: Annotated[list[int] | None, typer.Option(help="Only these threads.")] = None,
    comm: Annotated[list[str] | None, typer.Option(
        help="Only processes or threads with this name.")] = None,
    cpu: Annotated[list[int] | None, typer.Option(help="Only samples taken on these CPUs.")] = None,
    user_only: Annotated[bool, typer.Option("--user-only", help="Drop kernel frames.")] = False,
    kernel_only: Annotated[bool, typer.Option(
        "--kernel-only", help="Drop user frames.")] = False,
    focus: Annotated[str | None, typer.Option(
        help="Keep stacks through a frame matching this regex.")] = None,
    exclude: Annotated[str | None, typer.Option(
        help="Drop stacks through a frame matching this regex.")] = None,
    per_cpu: Annotated[bool, typer.Option("--per-cpu", help="A root frame per CPU.")] = False,
    per_thread: Annotated[bool, typer.Option(
        "--per-thread", help="A root frame per thread.")] = False,
    per_process: Annotated[bool, typer.Option(
        "--per-process", help="A root frame per process.")] = False,
    title: Annotated[str, typer.Option(help="SVG title.")] = "Flame Graph",
    colors: Annotated[str, typer.Option(help="SVG palette: bee, hot, mem, io, java.")] = "bee",
    width: Annotated[int, typer.Option(help="SVG width in pixels.")] = 1200,
    minwidth: Annotated[float, typer.Option(help="SVG: hide frames narrower (px).")] = 0.1,
    reverse: Annotated[bool, typer.Option(help="SVG: reverse stacks.")] = False,
    inverted: Annotated[bool, typer.Option(help="SVG: icicle graph.")] = False,
    renderer: Annotated[str, typer.Option(
        help="SVG renderer: auto (inferno if installed), builtin, inferno.")] = "auto",
    no_cache: NoCacheOpt = False,
    offline: OfflineOpt = False,
) -> None:
    """Symbolize recordings offline and render them (table, folded, SVG, exports)."""
    from bee_report.filters import Filters
    from bee_report.report import ReportOptions, SvgOptions
    from bee_report.report import run as run_report

    fmt = format or ("top" if output is None and sys.stdout.isatty() else "folded")
    written = run_report(ReportOptions(
        files=tuple(files), format=fmt, output=output,
        symbolize=_symbolize_options(symbols, no_cache, offline,
                                     dwarf=lines or not no_inline),
        filters=Filters(
            pids=tuple(pid or ()), tids=tuple(tid or ()), comms=tuple(comm or ()),
            cpus=tuple(cpu or ()), user_only=user_only, kernel_only=kernel_only,
            focus=focus, exclude=exclude, inline=not no_inline, per_cpu=per_cpu,
            per_thread=per_thread, per_process=per_process,
        ),
        limit=limit, by=by, lines=lines,
        svg=SvgOptions(title=title, colors=colors, width=width, minwidth=minwidth,
                       reverse=reverse, inverted=inverted, renderer=renderer),
    ))
    if written is not None:
        typer.echo(f"Wrote {written}", err=True)


@app.command()
def diff(
    base: Annotated[Path, typer.Argument(help="The baseline recording.")],
    new: Annotated[Path, typer.Argument(help="The recording to compare with it.")],
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help="top | folded | svg (default: top on a terminal, else folded).",
    )] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here instead of stdout.")] = None,
    symbols: SymbolsOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Rows in the top table.")] = 25,
    by: Annotated[str, typer.Option(help="Top table by function | module.")] = "function",
    share: Annotated[str, typer.Option(help="Test the self or total share.")] = "self",
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    correction: Annotated[str, typer.Option(
        help="Multiple-comparison correction: bh | holm | none.")] = "bh",
    normalize: Annotated[bool, typer.Option(
        help="folded: scale base counts to the new total (difffolded -n).")] = False,
    ignore_comm: Annotated[bool, typer.Option(
        "--ignore-comm", help="Match stacks across different process names.")] = False,
    strip_hex: Annotated[bool, typer.Option(
        "--strip-hex", help="Ignore hex offsets of unnamed frames (difffolded -s).")] = False,
    comm: Annotated[list[str] | None, typer.Option(
        help="Only processes or threads with this name.")] = None,
    focus: Annotated[str | None, typer.Option(
        help="Keep stacks through a frame matching this regex.")] = None,
    exclude: Annotated[str | None, typer.Option(
        help="Drop stacks through a frame matching this regex.")] = None,
    title: Annotated[str, typer.Option(help="SVG title.")] = "Flame Graph",
    renderer: Annotated[str, typer.Option(
        help="SVG renderer: auto, builtin, inferno.")] = "auto",
    no_cache: NoCacheOpt = False,
    offline: OfflineOpt = False,
) -> None:
    """Compare two recordings by symbolized stacks, with significance for the top table."""
    from bee_report.filters import Filters
    from bee_report.report import DiffOptions, SvgOptions, run_diff

    fmt = format or ("top" if output is None and sys.stdout.isatty() else "folded")
    written = run_diff(DiffOptions(
        base=(base,), new=(new,), format=fmt, output=output,
        symbolize=_symbolize_options(symbols, no_cache, offline),
        filters=Filters(comms=tuple(comm or ()), focus=focus, exclude=exclude),
        limit=limit, by=by, share=share, alpha=alpha, correction=correction,
        normalize=normalize, ignore_comm=ignore_comm, strip_hex=strip_hex,
        svg=SvgOptions(title=title, renderer=renderer),
    ))
    if written is not None:
        typer.echo(f"Wrote {written}", err=True)


@app.command()
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
    from bee_report.addr2line import parse_address
    from bee_report.addr2line import symbolize as run

    source = addresses if addresses else (line for line in sys.stdin if line.strip())
    opts = _symbolize_options(symbols, no_cache, offline)
    out = sys.stdout
    for line in run(exe, (parse_address(a) for a in source), opts, inlines=not no_inline):
        out.write(line + "\n")
    out.flush()


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

"""`bee record`: sample stacks with BPF into one recording file (target side)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bee.commands.choices import choice
from bee_contract.errors import RecordError
from bee_contract.recording import Unwinder
from bee_record.record import Mode


def record(
    command: Annotated[list[str] | None, typer.Argument(
        help="Command to start and record until it exits; put it after --.",
        show_default=False)] = None,
    pid: Annotated[list[int] | None, typer.Option(
        "--pid", "-p", help="Record this process and its children. Repeatable.")] = None,
    frequency: Annotated[int, typer.Option(
        "--frequency", "-F", help="Samples per second per CPU.")] = 99,
    mode: Annotated[Mode, typer.Option(
        click_type=choice(Mode), help="cpu: on-CPU samples; offcpu: blocked time "
        "(sched_switch); wall: both, in ns.")] = Mode.CPU,
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
    unwind: Annotated[Unwinder, typer.Option(
        click_type=choice(Unwinder), help="User stacks: dwarf (.eh_frame tables, complete "
        "without frame pointers); fp (frame pointers only, cheaper).")] = Unwinder.DWARF,
    include_idle: Annotated[bool, typer.Option(
        "--include-idle", help="Also sample the idle task.")] = False,
    stack_storage_size: Annotated[int | None, typer.Option(
        help="Unique stacks the kernel can hold between drains (default: 16384, "
        "32768 above 199 Hz: fewer hash collisions, 32 MiB of kernel memory per buffer)."
    )] = None,
    counts_size: Annotated[int, typer.Option(help="Unique sample keys between drains.")] = 40960,
    procs_size: Annotated[int, typer.Option(
        help="Processes the kernel tracks (announced, filtered) at once.")
    ] = 65536,
    perf_buffer_pages: Annotated[int, typer.Option(
        help="Pages per CPU (a power of two) of the buffer announcing new processes.")] = 64,
    no_python: Annotated[bool, typer.Option(
        "--no-python", help="Do not record the Python frames of CPython 3.10-3.13 processes."
    )] = False,
    python_stacks_size: Annotated[int, typer.Option(
        help="Unique Python stacks the kernel can hold between drains.")] = 2048,
    drain_interval: Annotated[float, typer.Option(
        help="Seconds between drains of kernel maps.")] = 1.0,
    time_resolution: Annotated[int, typer.Option(
        "--time-resolution", metavar="MS",
        help="Width in milliseconds (10 to 10000) of the time buckets samples are counted "
        "in, for report --from/--to and the timeline.")] = 100,
    no_bpf_cache: Annotated[bool, typer.Option(
        "--no-bpf-cache", help="Compile the BPF program with clang even when bee's cache of "
        "it (/var/cache/bee/bpf) or the programs bee ships hold this compile; neither read "
        "nor write the cache.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Record stacks with BPF into one compact file. No symbolization happens here."""
    from bee_record.record import RecordOptions
    from bee_record.record import record as run
    from bee_record.sampler import SamplerOptions

    if user_only and kernel_only:
        raise RecordError("--user-only and --kernel-only exclude each other")
    opts = RecordOptions(
        output=output, pids=tuple(pid or ()), command=tuple(command or ()),
        frequency=frequency, mode=mode, min_block_us=min_block, max_block_us=max_block,
        rotate=rotate, events=tuple(event or ()), cgroup=cgroup,
        duration=duration, keep_cmdline=not no_cmdline,
        drain_interval=drain_interval, time_resolution_ms=time_resolution, quiet=quiet,
        argv=tuple(sys.argv),
        sampler=SamplerOptions(
            user_stacks=not kernel_only, kernel_stacks=not user_only, include_idle=include_idle,
            stack_storage_size=stack_storage_size or 0, counts_size=counts_size,
            procs_size=procs_size, perf_buffer_pages=perf_buffer_pages,
            python=not no_python and not kernel_only, python_stacks_size=python_stacks_size,
            unwinder=unwind.value, bpf_cache=not no_bpf_cache,
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

"""Write `formats/sample-v2.bee`, a small hand-made recording that shows every table.

Run: `.venv/bin/python -m formats.make_sample` (the test suite checks that the committed file is
byte-identical to what this script produces, so the two cannot drift apart).
`formats/sample-v1.bee` is the same recording as version 1 wrote it (no time buckets), kept
so that reading old files stays tested; it is never rewritten.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bee_contract import codec
from bee_contract.recording import (
    LOST_STACK,
    NO_STACK,
    PY_ENTRY,
    PY_TRUNCATED,
    Binary,
    Header,
    JitSymbol,
    KernelInfo,
    KernelSymbol,
    Mapping,
    Process,
    PythonCode,
    PythonInfo,
    Recording,
    Sample,
)

SAMPLE = Path(__file__).resolve().parent / "sample-v2.bee"
SAMPLE_V1 = Path(__file__).resolve().parent / "sample-v1.bee"


def sample_recording() -> Recording:
    """A two-process recording: an app with a user+kernel stack, and a kernel thread.

    One second in 100 ms time buckets: the app's main thread runs in buckets 2 and 7.
    """
    app = Process(
        pid=4242, generation=0, ns_pid=4242, ppid=1, comm="app", exe="/opt/app/bin/app",
        cmdline=("/opt/app/bin/app", "--serve"),
        maps=(
            Mapping(0x555555554000 + 0x1000, 0x555555554000 + 0x2000, 0x1000, 0x803, 131,
                    "/opt/app/bin/app", 0),
            Mapping(0x7FFFF7DC2000, 0x7FFFF7F17000, 0x26000, 0x803, 2621,
                    "/usr/lib/x86_64-linux-gnu/libc.so.6", 1),
            Mapping(0x7FFFF7FC1000, 0x7FFFF7FC3000, 0, 0, 0, "[vdso]", -1),
        ),
    )
    kworker = Process(pid=77, generation=0, ns_pid=77, ppid=2, comm="kworker/0:1", exe="",
                      cmdline=None, maps=())
    stacks = (
        (0x555555555150, 0x5555555551A0, 0x7FFFF7DEB24A),  # app: leaf ... root
        (0xFFFFFFFF81001234, 0xFFFFFFFF81005678),  # kernel: leaf, caller
    )
    samples = (
        Sample(process=0, tid=4242, cpu=0, comm="app", user_stack=0, kernel_stack=NO_STACK,
               count=50, weight=50, bucket=2),
        Sample(process=0, tid=4242, cpu=0, comm="app", user_stack=0, kernel_stack=NO_STACK,
               count=40, weight=40, bucket=7),
        Sample(process=0, tid=4243, cpu=1, comm="app-worker", user_stack=0, kernel_stack=1,
               count=7, weight=7, bucket=3),
        Sample(process=0, tid=4243, cpu=1, comm="app-worker", user_stack=LOST_STACK,
               kernel_stack=1, count=1, weight=1, bucket=3),
        Sample(process=1, tid=77, cpu=0, comm="kworker/0:1", user_stack=NO_STACK,
               kernel_stack=1, count=2, weight=2, bucket=9),
    )
    return Recording(
        header=Header(
            host="target-1", kernel_release="6.1.0-13-amd64", arch="x86_64",
            start_time_ns=1_764_000_000_000_000_000, duration_ns=1_000_000_000,
            frequency_hz=99, mode="cpu", weight_unit="samples", events=("cpu-clock",),
            target="system", bee_version="0.1.0", argv=("bee", "record", "-d", "1"),
            time_resolution_ns=100_000_000,
        ),
        binaries=(
            Binary("/opt/app/bin/app", "0123456789abcdef0123456789abcdef01234567", 16384),
            Binary("/usr/lib/x86_64-linux-gnu/libc.so.6",
                   "ffeeddccbbaa99887766554433221100ffeeddcc", 1922136),
        ),
        processes=(app, kworker),
        stacks=stacks,
        samples=samples,
        kernel=KernelInfo(
            release="6.1.0-13-amd64", build_id="4a5a9b0affb66c437abcd455d2738af879985fa9",
            symbols=(
                KernelSymbol(0xFFFFFFFF81001200, "native_safe_halt", ""),
                KernelSymbol(0xFFFFFFFF81001300, "default_idle", ""),
                KernelSymbol(0xFFFFFFFF81005600, "do_idle", ""),
                KernelSymbol(0xFFFFFFFF81005700, "cpu_startup_entry", ""),
            ),
        ),
        lost={"user_stack_errors": 1, "kernel_stack_errors": 0},
    )


def rich_recording() -> Recording:
    """The sample with every version 2 column filled (the fuzz tests' seed): JIT symbols
    with bucket ranges, a CPython 3.11 process's code objects and a Python stack."""
    rec = sample_recording()
    app = rec.processes[0]
    codes = (PythonCode(0x7F0000001000, "Server.handle", "/app/server.py", 10,
                        b"\x80\x00\xd8\x04\x08\x84\x01\xd8\x0b\x0c\x80\x08"),
             PythonCode(0x7F0000002000, "", "", 0, b""))
    app = dataclasses.replace(
        app, jit=(JitSymbol(0x7F1000000000, 64, "jit_a", 1, 3),
                  JitSymbol(0x7F1000000000, 64, "jit_b", 4, 9)),
        python=PythonInfo(0x030B0000, codes))
    samples = (dataclasses.replace(rec.samples[0], python_stack=0), *rec.samples[1:])
    return dataclasses.replace(
        rec, processes=(app, *rec.processes[1:]), samples=samples,
        python_stacks=(((0, 3 | PY_ENTRY), (1, 0), (PY_TRUNCATED, 0)),))


def main() -> None:
    """Write the sample file."""
    size = codec.write(sample_recording(), SAMPLE)
    print(f"Wrote {SAMPLE} ({size} bytes)")


if __name__ == "__main__":
    main()

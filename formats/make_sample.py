"""Write `formats/sample-v2.bee`, a small hand-made recording that shows every field.

Run: `.venv/bin/python -m formats.make_sample` (the test suite checks that the committed file is
byte-identical to what this script produces, so the two cannot drift apart).
`formats/sample-v1.bee` is its app and kworker as version 1 wrote them (no time buckets, no
JIT, truncated or Python stacks), kept so that reading old files stays tested; it is never
rewritten.
"""

from __future__ import annotations

import struct
from pathlib import Path

from bee_contract import codec
from bee_contract.recording import (
    LOST_STACK,
    NO_STACK,
    PY_ENTRY,
    PY_TRUNCATED,
    TRUNCATED_FRAME,
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


#: A Python program the sampled interpreter (process 2) runs, as /srv/app/loop.py:
#:
#:     1  import time
#:     2
#:     3
#:     4  def tick(n):
#:     5      total = 0
#:     6      for i in range(n):
#:     7          total += i
#:     8      return time.time() + total
#:     9
#:    10
#:    11  def main():
#:    12      while True:
#:    13          tick(1000)
#:
#: The line tables are the real `co_linetable` bytes of CPython 3.11.2 for these functions.
TICK = PythonCode(
    0x7FFFF7A1C030, "tick", "/srv/app/loop.py", 4,
    b"\x80\x00\xd8\x0c\r\x80E\xdd\r\x12\x901\x89X\x8cX\xf0\x00\x01\x05\x13\xf0\x00\x01\x05"
    b"\x13\x88\x01\xd8\x08\r\x90\x11\x89\n\x88\x05\x88\x05\xdd\x0b\x0f\x8c9\x89;\x8c;\x98"
    b"\x15\xd1\x0b\x1e\xd0\x04\x1e",
)
MAIN = PythonCode(
    0x7FFFF7A1C0F0, "main", "/srv/app/loop.py", 11,
    b"\x80\x00\xf0\x02\x01\x05\x13\xdd\x08\x0c\x88T\x89\n\x8c\n\x88\n\xf0\x03\x01\x05\x13",
)

#: Where the interpreter's functions are in python3.11 (file offsets of `python_elf()`).
PY_FUNCTIONS = (("time_time", 0x140, 0x40), ("_PyEval_EvalFrameDefault", 0x180, 0x40),
                ("main", 0x1C0, 0x40))
PY_BUILD_ID = "5b9d3c8d1a2e4f60718293a4b5c6d7e8f9a0b1c2"
PY_BASE = 0x560000000000  # python3.11 mapped at file offset 0
VDSO_BASE = 0x7FFFF7FC1000
LIBC_START_MAIN = 0x7FFFF7DEB24A  # a return address in libc, the root of native stacks


def tiny_elf(functions: tuple[tuple[str, int, int], ...], build_id: str | None = None) -> bytes:
    """A minimal x86-64 ELF shared object: one PT_LOAD mapping the file at address 0,
    `.text` from offset 0x100 holding `functions` (name, address, size) named in `.dynsym`,
    and a GNU build-id note when given. Stands in for the vDSO image and, in tests, for
    python3.11 (a real one would be megabytes of bytes nobody reads)."""
    text = bytes([0xCC]) * (max(a + n for _, a, n in functions) - 0x100)
    note = (struct.pack("<III4s", 4, len(build_id) // 2, 3, b"GNU\0") + bytes.fromhex(build_id)
            if build_id else b"")
    names = b"\0" + b"".join(n.encode() + b"\0" for n, _, _ in functions)
    syms = bytes(24) + b"".join(
        struct.pack("<IBBHQQ", names.index(b"\0" + n.encode() + b"\0") + 1, 0x12, 0, 1, a, size)
        for n, a, size in functions)
    shstr = b"\0.text\0.note.gnu.build-id\0.dynsym\0.dynstr\0.shstrtab\0"
    parts = [text, note, syms, names, shstr]
    offsets = [0x100]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    shoff = (offsets[-1] + len(shstr) + 7) & ~7
    body = bytearray(shoff)
    for off, part in zip(offsets, parts, strict=True):
        body[off:off + len(part)] = part
    sections = [bytes(64)] + [  # name, type, flags, addr, offset, size, link, info, align, entsize
        struct.pack("<IIQQQQIIQQ", shstr.index(b"\0" + name + b"\0") + 1, kind, flags,
                    addr, off, len(part), link, info, 8 if kind == 11 else 1, ent)
        for name, kind, flags, addr, link, info, ent, off, part in (
            (b".text", 1, 6, 0x100, 0, 0, 0, offsets[0], text),
            (b".note.gnu.build-id", 7, 2, offsets[1], 0, 0, 0, offsets[1], note),
            (b".dynsym", 11, 2, offsets[2], 4, 1, 24, offsets[2], syms),
            (b".dynstr", 3, 2, offsets[3], 0, 0, 0, offsets[3], names),
            (b".shstrtab", 3, 0, 0, 0, 0, 0, offsets[4], shstr),
        )]
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, shoff, shoff, 0x1000)  # PT_LOAD r-x
    ehdr = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, shoff, 0, 64, 56, 1, 64, len(sections), 5)
    body[:64 + 56] = ehdr + load
    return bytes(body) + b"".join(sections)


def sample_recording() -> Recording:
    """Three processes over one second in 100 ms time buckets, showing every field.

    - app (4242): its main thread runs in buckets 2 and 7; a worker thread with a kernel
      stack in bucket 3, one of its user stacks lost; a JIT-compiled function whose
      address held `parse (v1)` in bucket 3 and `parse (v2)` in bucket 7; a stack the
      unwinder could not finish (truncation marker) in bucket 5.
    - kworker/0:1 (77): a kernel thread.
    - python3 (5151): CPython 3.11 running /srv/app/loop.py, its Python stacks merged into
      the native ones: `main` calling `tick` calling `time.time()` (a vDSO frame), `tick`
      in its loop with the outer Python frames not recorded, and one Python stack lost.
    """
    libc = Mapping(0x7FFFF7DC2000, 0x7FFFF7F17000, 0x26000, 0x803, 2621,
                   "/usr/lib/x86_64-linux-gnu/libc.so.6", 1)
    vdso = Mapping(VDSO_BASE, VDSO_BASE + 0x2000, 0, 0, 0, "[vdso]", -1)
    app = Process(
        pid=4242, generation=0, ns_pid=4242, ppid=1, comm="app", exe="/opt/app/bin/app",
        cmdline=("/opt/app/bin/app", "--serve"),
        maps=(
            Mapping(0x555555554000 + 0x1000, 0x555555554000 + 0x2000, 0x1000, 0x803, 131,
                    "/opt/app/bin/app", 0),
            libc, vdso,
        ),
        jit=(  # one address, reused by the JIT compiler between buckets 3 and 7
            JitSymbol(0x7FFFE8001000, 0x100, "parse (v1)", first_bucket=3, last_bucket=3),
            JitSymbol(0x7FFFE8001000, 0x80, "parse (v2)", first_bucket=7, last_bucket=7),
        ),
    )
    kworker = Process(pid=77, generation=0, ns_pid=77, ppid=2, comm="kworker/0:1", exe="",
                      cmdline=None, maps=())
    python = Process(
        pid=5151, generation=0, ns_pid=5151, ppid=1, comm="python3", exe="/usr/bin/python3.11",
        cmdline=("python3", "/srv/app/loop.py"),
        maps=(Mapping(PY_BASE, PY_BASE + 0x1000, 0, 0x803, 3120, "/usr/bin/python3.11", 2),
              libc, vdso),
        python=PythonInfo(version=0x030B02F0, codes=(TICK, MAIN)),  # 3.11.2
    )
    stacks = (
        (0x555555555150, 0x5555555551A0, LIBC_START_MAIN),  # 0 app: leaf ... root
        (0xFFFFFFFF81001234, 0xFFFFFFFF81005678),  # 1 kernel: leaf, caller
        (0x7FFFE8001010, 0x5555555551A0, LIBC_START_MAIN),  # 2 app: leaf in JIT code
        (0x555555555150, 0x5555555551A0, TRUNCATED_FRAME),  # 3 app: unwinder stopped
        # 4 python: __vdso_clock_gettime <- time_time <- _PyEval_EvalFrameDefault <- main
        (VDSO_BASE + 0x110, PY_BASE + 0x150, PY_BASE + 0x190, PY_BASE + 0x1D0,
         LIBC_START_MAIN),
        (PY_BASE + 0x188, PY_BASE + 0x1D0, LIBC_START_MAIN),  # 5 python: in the eval loop
    )
    python_stacks = (  # (code index, instruction index in code units), leaf first
        ((0, 37), (1, 11 | PY_ENTRY)),  # tick line 8 <- main line 13, one eval call
        ((0, 22), (PY_TRUNCATED, 0)),  # tick line 7; outer frames not recorded
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
        Sample(process=0, tid=4244, cpu=1, comm="app-jit", user_stack=2,
               kernel_stack=NO_STACK, count=4, weight=4, bucket=3),
        Sample(process=0, tid=4244, cpu=1, comm="app-jit", user_stack=2,
               kernel_stack=NO_STACK, count=6, weight=6, bucket=7),
        Sample(process=0, tid=4242, cpu=0, comm="app", user_stack=3, kernel_stack=NO_STACK,
               count=3, weight=3, bucket=5),
        Sample(process=2, tid=5151, cpu=1, comm="python3", user_stack=4,
               kernel_stack=NO_STACK, count=20, weight=20, python_stack=0, bucket=4),
        Sample(process=2, tid=5151, cpu=1, comm="python3", user_stack=5,
               kernel_stack=NO_STACK, count=5, weight=5, python_stack=1, bucket=6),
        Sample(process=2, tid=5151, cpu=0, comm="python3", user_stack=5,
               kernel_stack=NO_STACK, count=1, weight=1, python_stack=LOST_STACK, bucket=6),
    )
    return Recording(
        header=Header(
            host="target-1", kernel_release="6.1.0-13-amd64", arch="x86_64",
            start_time_ns=1_764_000_000_000_000_000, duration_ns=1_000_000_000,
            frequency_hz=99, mode="cpu", weight_unit="samples", events=("cpu-clock",),
            target="system", bee_version="0.1.0", argv=("bee", "record", "-d", "1"),
            unwinder="dwarf", time_resolution_ns=100_000_000,
        ),
        binaries=(
            Binary("/opt/app/bin/app", "0123456789abcdef0123456789abcdef01234567", 16384),
            Binary("/usr/lib/x86_64-linux-gnu/libc.so.6",
                   "ffeeddccbbaa99887766554433221100ffeeddcc", 1922136),
            Binary("/usr/bin/python3.11", PY_BUILD_ID, 6809944),
        ),
        processes=(app, kworker, python),
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
            vdso=tiny_elf((("__vdso_clock_gettime", 0x100, 0x40),)),
        ),
        lost={"user_stack_errors": 1, "kernel_stack_errors": 0, "counts_map_full": 0,
              "procs_map_full": 0, "announcements_lost": 0, "python_stacks_full": 1,
              "python_frames_unreadable": 0},
        python_stacks=python_stacks,
    )


def python_elf() -> bytes:
    """A stand-in for the recorded python3.11 (same build-id), for reports with --symbols."""
    return tiny_elf(PY_FUNCTIONS, PY_BUILD_ID)


def main() -> None:
    """Write the sample file."""
    size = codec.write(sample_recording(), SAMPLE)
    print(f"Wrote {SAMPLE} ({size} bytes)")


if __name__ == "__main__":
    main()

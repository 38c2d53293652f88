"""Hand-built Profiles and speedscope's importers under node, for the export reporters' tests.

speedscope is looked up in $BEE_SPEEDSCOPE_DIR (a directory holding its npm package, i.e.
``node_modules/speedscope``) or ``tests/.node`` (``npm install --prefix tests/.node
speedscope@1.25.0``); tests that need it are skipped, with the reason, when it or node
is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from bee_report.profile import Frame, FrameKind, Profile, StackSample

HERE = Path(__file__).parent
LOAD_JS = HERE / "fixtures" / "speedscope" / "load.js"
SPEEDSCOPE_VERSION = "1.25.0"

K, J, INL, U = FrameKind.KERNEL, FrameKind.JIT, FrameKind.INLINED, FrameKind.USER
KMOD = "[kernel.kallsyms]"

MAIN = Frame("main", U, "app", "/src/app.c", 10, 0x401010)
COMPUTE = Frame("compute", U, "app", "/src/app.c", 42, 0x401100)
VEC_ADD = Frame("vec_add", INL, "app", "/src/vec.h", 7, 0x401100)  # inlined into compute
SCALAR = Frame("scalar_add", INL, "app", "/src/vec.h", 3, 0x401100)  # inlined into vec_add
WRITE = Frame("__GI___libc_write", U, "libc.so.6", None, None, 0x7F0000012345)
SYSCALL = Frame("entry_SYSCALL_64_after_hwframe", K, KMOD, address=0xFFFFFFFF82000000)
KSYS = Frame("ksys_write", K, KMOD, address=0xFFFFFFFF81300000)
EXT4 = Frame("ext4_file_write_iter", K, "[ext4]", address=0xFFFFFFFFC0100000)
JIT = Frame("LazyCompile:*hot /app/x.js:12", J, "[jit]", address=0x3F0000001000)
NODE = Frame("node::Start(int, char**)", U, "node", "/src/node.cc", 1100, 0x1000100)
HOSTILE = Frame('op<<(std::ostream&, "x"); ünïcödé 🐝\n\t\\ <a href=#>&amp;', U,
                "lib wëird;.so", "/src/we\"ird.cc", 5, 0x7F0000100000)
UNKNOWN = Frame("[unknown]", U, "", address=0x1234)
SWAPPER = Frame("do_idle", K, KMOD, address=0xFFFFFFFF81100000)

#: Build-ids and full paths the pprof reporter can be handed.
BINARIES = (("/usr/bin/app", "aa11"), ("/usr/lib/x86_64-linux-gnu/libc.so.6", "cc33"),
            ("/usr/bin/node", None))


def _s(frames: tuple[Frame, ...], weight: int, pid: int, tid: int, cpu: int, comm: str,
       thread: str, count: int | None = None, event: str = "cpu-clock") -> StackSample:
    return StackSample(frames, weight, weight if count is None else count, pid, tid, cpu,
                       comm, thread, event)


def rich_profile(unit: str = "samples") -> Profile:
    """Several processes and threads, kernel, JIT, inlined, unknown and hostile frames.

    With unit "nanoseconds", weights are scaled by 1000 and counts kept small, as off-CPU
    recordings have them.
    """
    scale = 1000 if unit == "nanoseconds" else 1
    raw = [
        # pid 100 "app": main thread and a worker; inlined frames; a syscall; no stack
        ((MAIN, COMPUTE, VEC_ADD, SCALAR), 50, 100, 100, 0, "app", "app"),
        ((MAIN, COMPUTE, VEC_ADD, SCALAR), 7, 100, 101, 1, "app", "worker-1"),
        ((MAIN, COMPUTE), 20, 100, 101, 1, "app", "worker-1"),
        ((MAIN, WRITE, SYSCALL, KSYS, EXT4), 13, 100, 100, 2, "app", "app"),
        ((MAIN, WRITE, SYSCALL, KSYS, EXT4), 2, 100, 100, 3, "app", "app"),
        ((), 3, 100, 100, 0, "app", "app"),
        ((MAIN, UNKNOWN), 0, 100, 100, 0, "app", "app"),  # zero weight
        # pid 300 "node": JIT frames under a native frame
        ((NODE, JIT, JIT), 11, 300, 301, 3, "node", "V8 Worker ☃"),
        ((NODE, JIT), 5, 300, 300, 2, "node", "node"),
        # pid 0: the idle task, kernel only
        ((SWAPPER,), 30, 0, 0, 0, "swapper/0", "swapper/0"),
        # pid 200: hostile process, thread and frame names
        ((HOSTILE, UNKNOWN), 4, 200, 200, 1, 'evil;"<proc>"', "thr\u2028\x00ead"),
    ]
    samples = [_s(f, w * scale, pid, tid, cpu, comm, thr, count=w if w else 1)
               for f, w, pid, tid, cpu, comm, thr in raw]
    return Profile(samples, unit=unit, sources=["a.bee"], lost=2)


def suffixed(frame: Frame) -> str:
    """A frame's name as the speedscope export shows it (spelled out independently)."""
    suffix = {K: " [k]", J: " [jit]", INL: " [inlined]"}.get(frame.kind, "")
    return frame.name + suffix


def expected_stacks(profile: Profile, per_thread: bool = False,
                    ) -> dict[tuple[int, int | str], Counter[tuple[str, ...]]]:
    """Weights per suffixed stack (root first), per (pid, comm) or per (pid, tid)."""
    out: dict[tuple[int, int | str], Counter[tuple[str, ...]]] = {}
    for s in profile:
        if s.weight <= 0:
            continue
        key: tuple[int, int | str] = (s.pid, s.tid) if per_thread else (s.pid, s.comm)
        stack = tuple(suffixed(f) for f in s.frames) or ("[unknown]",)
        out.setdefault(key, Counter())[stack] += s.weight
    return out


def speedscope_package() -> Path:
    """The speedscope npm package directory, or skip the test saying how to get it."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs)")
    base = os.environ.get("BEE_SPEEDSCOPE_DIR") or str(HERE / ".node")
    pkg = Path(base) / "node_modules" / "speedscope"
    if not (pkg / "dist" / "release").is_dir():
        pytest.skip(f"speedscope's npm package is not in {base} "
                    f"(npm install --prefix {base} speedscope@{SPEEDSCOPE_VERSION})")
    return pkg


def speedscope_load(mode: str, data: bytes) -> dict[str, object]:
    """What speedscope's own importer makes of `data` ("json" or gzipped "pprof")."""
    pkg = speedscope_package()
    proc = subprocess.run(["node", str(LOAD_JS), str(pkg), mode], input=data,
                          capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    result: dict[str, object] = json.loads(proc.stdout)
    return result

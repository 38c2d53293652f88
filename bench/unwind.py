#!/usr/bin/env python3
"""Benchmarks of the .eh_frame unwinder; writes ``bench/unwind.md``.

    sudo .venv/bin/python bench/unwind.py [--seconds 4]

Measures, on Debian's python3.11 running a recursive loop:

* BPF time per sample of the cpu-clock program, dwarf vs fp unwinder (kernel BPF stats:
  ``run_time_ns / run_cnt`` from the program's fdinfo; tail calls count in their caller);
* record CPU (user+sys after start-up) and peak RSS of ``bee record``;
* file bytes per sample: bee (dwarf) vs ``perf record -g`` vs ``perf record --call-graph
  dwarf`` on the same workload;
* unwind-table build time, cold (no cache) and warm, for libc, python3.11 and libLLVM;
* BPF compile time (CPU) of bee's program vs an empty bcc program.
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = str(ROOT / ".venv" / "bin" / "python")
PYTHON = "/usr/bin/python3.11"
LOOP = (
    "import sys, time\n"
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n    fib(18)\n"
)
FREQ = 999


def _prog_stats(pid: int) -> dict[str, tuple[int, int]]:
    """name -> (run_time_ns, run_cnt) of the BPF programs held open by `pid`."""
    out: dict[str, tuple[int, int]] = {}
    for fd in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            text = Path(fd).read_text()
        except OSError:
            continue
        if "prog_type:" not in text or "run_cnt:" not in text:
            continue
        fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        try:
            link = os.readlink(f"/proc/{pid}/fd/{Path(fd).name}")
        except OSError:
            link = ""
        if "bpf-prog" not in link:
            continue
        tag = fields.get("prog_tag", "?").strip()
        out[tag] = (int(fields.get("run_time_ns", "0")), int(fields.get("run_cnt", "0")))
    return out


def bpf_per_sample(unwind: str, seconds: float, tmp: Path) -> dict[str, float]:
    """ns per sample of the on-CPU program, record CPU and RSS, file bytes per sample."""
    script = tmp / "loop.py"
    script.write_text(LOOP)
    out = tmp / f"{unwind}.bee"
    cmd = [VENV_PY, "-m", "bee", "record", "-q", "-F", str(FREQ), "--unwind", unwind,
           "-o", str(out), "--", PYTHON, str(script), str(seconds)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, cwd=ROOT)
    best: dict[str, tuple[int, int]] = {}
    while proc.poll() is None:
        stats = _prog_stats(proc.pid)
        if stats:
            best = stats
        time.sleep(0.2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the busiest program is the cpu-clock one (tail-called links count in it)
    ns, cnt = max(best.values(), key=lambda v: v[1], default=(0, 0))
    from bee_contract import codec

    rec = codec.read(out)
    return {
        "ns_per_sample": ns / max(cnt, 1),
        "samples": rec.total_samples,
        "bytes_per_sample": out.stat().st_size / max(rec.total_samples, 1),
        "record_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "rss_mib": after.ru_maxrss / 1024,
        "lost": rec.total_lost,
    }


def perf_bytes_per_sample(args: list[str], seconds: float, tmp: Path) -> float:
    """perf.data bytes per sample for `perf record ARGS` on the same workload."""
    script = tmp / "loop.py"
    data = tmp / "perf.data"
    subprocess.run(["perf", "record", "-q", "-F", str(FREQ), *args, "-o", str(data), "--",
                    PYTHON, str(script), str(seconds)], check=True, capture_output=True)
    text = subprocess.run(["perf", "report", "-i", str(data), "--stats"], check=True,
                          capture_output=True, text=True).stdout
    samples = 0
    for line in text.splitlines():
        if line.strip().startswith("SAMPLE events:"):
            samples = int(line.split(":")[1].split()[0])
    return data.stat().st_size / max(samples, 1)


def table_times() -> list[tuple[str, float, float, int]]:
    """(binary, cold s, warm s, rows) for the unwind-table build."""
    from bee_contract.buildid import build_id_of_path
    from bee_record.unwind import table

    llvm = sorted(glob.glob("/usr/lib/x86_64-linux-gnu/libLLVM-*.so.1"))
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for path in ["/lib/x86_64-linux-gnu/libc.so.6", PYTHON, *llvm[:1]]:
            bid = build_id_of_path(path)
            t0 = time.perf_counter()
            t = table.load(path, bid, Path(cache))
            t1 = time.perf_counter()
            table.load(path, bid, Path(cache))
            t2 = time.perf_counter()
            rows.append((path, t1 - t0, t2 - t1, t.count))
    return rows


def compile_times() -> tuple[float, float]:
    """CPU seconds to compile an empty bcc program and bee's program (all of bpf/*.c)."""
    code = (
        "import resource, sys\nfrom bcc import BPF\n"
        "if sys.argv[1:]:\n    from bee_record.sampler import program_text\n"
        "    src = program_text()\nelse:\n    src = 'int x(void *c){return 0;}'\n"
        "r = resource.getrusage(resource.RUSAGE_SELF); t = r.ru_utime + r.ru_stime\n"
        "BPF(text=src.encode())\n"
        "r = resource.getrusage(resource.RUSAGE_SELF); print(r.ru_utime + r.ru_stime - t)\n"
    )

    def best(*args: str) -> float:
        return min(float(subprocess.run([VENV_PY, "-c", code, *args], check=True, cwd=ROOT,
                                        capture_output=True, text=True).stdout)
                   for _ in range(2))

    return best(), best("bee")


def main() -> int:
    """Run every measurement and write bench/unwind.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=4.0)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench/unwind.py needs root (BPF, perf)", file=sys.stderr)
        return 2
    subprocess.run(["sysctl", "-q", "kernel.bpf_stats_enabled=1"], check=True)
    lines = ["# Unwinder benchmarks", "",
             f"python3.11 recursive loop, {FREQ} Hz, {args.seconds:g} s per run; "
             f"load average at start {os.getloadavg()[0]:.2f}.", ""]
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            runs = {u: bpf_per_sample(u, args.seconds, tmp) for u in ("fp", "dwarf")}
            perf_g = perf_dwarf = 0.0
            if shutil.which("perf"):
                perf_g = perf_bytes_per_sample(["-g"], args.seconds, tmp)
                perf_dwarf = perf_bytes_per_sample(["--call-graph", "dwarf"], args.seconds, tmp)
    finally:
        subprocess.run(["sysctl", "-q", "kernel.bpf_stats_enabled=0"], check=False)
    fp, dw = runs["fp"], runs["dwarf"]
    lines += ["| | fp | dwarf | ratio |", "|---|---|---|---|"]
    for key, label in (("ns_per_sample", "BPF ns per sample"), ("record_cpu_s", "record CPU s"),
                       ("rss_mib", "record peak RSS MiB"), ("bytes_per_sample", "file bytes "
                       "per sample"), ("samples", "samples"), ("lost", "lost")):
        ratio = dw[key] / fp[key] if fp[key] else 0.0
        lines.append(f"| {label} | {fp[key]:.1f} | {dw[key]:.1f} | {ratio:.2f}x |")
    lines += ["", "| file bytes per sample | bytes | bee dwarf / this |", "|---|---|---|",
              f"| bee --unwind dwarf | {dw['bytes_per_sample']:.1f} | 1 |",
              f"| perf record -g | {perf_g:.1f} | {dw['bytes_per_sample'] / perf_g:.4f} |",
              f"| perf record --call-graph dwarf | {perf_dwarf:.1f} | "
              f"{dw['bytes_per_sample'] / perf_dwarf:.5f} |", ""]
    lines += ["| unwind table | rows | cold s | warm s |", "|---|---|---|---|"]
    for path, cold, warm, nrows in table_times():
        lines.append(f"| {path} | {nrows} | {cold:.3f} | {warm:.4f} |")
    empty, ours = compile_times()
    lines += ["", f"BPF compile (CPU, best of 2): empty bcc program {empty:.2f} s, "
              f"bee's program (profile.c + unwind.c + python.c) {ours:.2f} s "
              f"({ours / empty:.2f}x; bee ships it compiled, so launches do not compile).", ""]
    (ROOT / "bench" / "unwind.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

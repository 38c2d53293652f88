#!/usr/bin/env python3
"""Memory over a long recording: system-wide at 999 Hz with process churn.

    sudo .venv/bin/python bench/long_run.py --minutes 60      # the real thing
    sudo .venv/bin/python bench/long_run.py --minutes 2       # a quick look

Runs `bee record -F 999 --rotate 60` system-wide while a churn workload spawns short
processes (each a fresh pid with its own maps) and a CPU-bound workload keeps the samples
coming, and samples bee's RSS (VmRSS of the recorder's process) every `--every` seconds.
Writes `bench/long_run.md` with the RSS series; flat memory means the maps drained, the
processes pruned between files and the collector's tables bounded. Standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEE = [str(ROOT / ".venv" / "bin" / "python"), "-m", "bee"]


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    """Run the long recording and write the RSS series."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "long_run.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bee-long-"))
    churn = subprocess.Popen(["sh", "-c", "while :; do /bin/true; sleep 0.01; done"])
    burn = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    rec = subprocess.Popen([*BEE, "record", "-q", "-F", "999", "--rotate", "60",
                            "-o", str(work / "long.bee")], cwd=ROOT)
    start = time.monotonic()
    series: list[tuple[float, int]] = []
    try:
        while time.monotonic() - start < args.minutes * 60:
            time.sleep(args.every)
            series.append((time.monotonic() - start, rss_kib(rec.pid)))
    finally:
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=120)
        for p in (churn, burn):
            p.kill()
            p.wait()
    files = sorted(work.glob("long.*.bee"))
    size = sum(f.stat().st_size for f in files)
    steady = [kib for t, kib in series if t >= min(60.0, args.minutes * 30)]
    lines = [
        "# Long recording: bee's memory over time",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.uname().release}, "
        f"{os.cpu_count()} CPUs. `bee record -F 999 --rotate 60`, system-wide, with a "
        "process-churn loop (/bin/true every 10 ms) and a CPU-bound process beside it.",
        "",
        f"Duration {args.minutes:g} min; {len(files)} files, {size / 1e6:.1f} MB in all.",
        f"RSS: first {series[0][1] / 1024:.1f} MiB, last {series[-1][1] / 1024:.1f} MiB, "
        f"max after warm-up {max(steady or [0]) / 1024:.1f} MiB." if series else "no samples",
        "",
        "| seconds | RSS MiB |",
        "|---:|---:|",
        *(f"| {t:.0f} | {kib / 1024:.1f} |" for t, kib in series),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()

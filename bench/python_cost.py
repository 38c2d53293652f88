"""What Python frames cost: BPF time per sample and bytes per sample (run as root).

For each CPython on the machine, records the 2:1 Python/regex workload
(tests/fixtures/src/python_split.py) twice, with and without `--no-python`, while the
kernel's BPF statistics are on. The cost per sample is the difference of the cpu-clock
program's total run time (read from the recorder's /proc/PID/fdinfo) divided by the
workload's samples; the file cost is the difference of bytes per sample. Prints a
Markdown table (`python bench/python_cost.py > bench/python_cost.md`).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bee_contract import codec  # noqa: E402

WORKLOAD = REPO / "tests" / "fixtures" / "src" / "python_split.py"
BPF_PROG_TYPE_PERF_EVENT = 7
SECONDS = 6


def _prog_stats(pid: int) -> tuple[int, int]:
    """Total run time (ns) and run count of the recorder's perf-event BPF programs."""
    ns = cnt = 0
    for fd in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            text = Path(fd).read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if fields.get("prog_type", "").strip() == str(BPF_PROG_TYPE_PERF_EVENT):
            ns += int(fields.get("run_time_ns", "0"))
            cnt += int(fields.get("run_cnt", "0"))
    return ns, cnt


def _run(python: str, out: Path, python_frames: bool) -> tuple[int, int, int, int]:
    """(bpf ns, bpf runs, workload samples, file bytes) of one recording."""
    cmd = [str(REPO / ".venv" / "bin" / "bee"), "record", "-q", "-F", "999", "-o", str(out),
           *(() if python_frames else ("--no-python",)), "--", python, str(WORKLOAD),
           str(SECONDS)]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    best = (0, 0)
    while proc.poll() is None:
        best = max(best, _prog_stats(proc.pid))
        time.sleep(0.2)
    rec = codec.read(out)
    samples = sum(s.count for s in rec.samples)
    return best[0], best[1], samples, out.stat().st_size


def main() -> None:
    """Measure every interpreter and print the table (argument: seconds per run)."""
    global SECONDS
    if len(sys.argv) > 1:
        SECONDS = max(1, int(float(sys.argv[1])))
    Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1")
    pythons = ["/usr/bin/python3.11",
               *sorted(glob.glob("/root/.pyenv/versions/3.1[0-3].*/bin/python3.1[0-3]"))]
    print("| interpreter | BPF ns/sample native | with Python | Python cost | "
          "bytes/sample native | with Python |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for python in pythons:
            if not os.access(python, os.X_OK):
                continue
            off = _run(python, Path(tmp) / "off.bee", False)
            on = _run(python, Path(tmp) / "on.bee", True)
            per_off = off[0] / max(off[2], 1)
            per_on = on[0] / max(on[2], 1)
            print(f"| {python} | {per_off:.0f} | {per_on:.0f} | {per_on - per_off:+.0f} | "
                  f"{off[3] / max(off[2], 1):.1f} | {on[3] / max(on[2], 1):.1f} |")
    Path("/proc/sys/kernel/bpf_stats_enabled").write_text("0")


if __name__ == "__main__":
    main()

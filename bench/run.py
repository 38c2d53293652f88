#!/usr/bin/env python3
"""Benchmark bee against perf and bcc side by side; writes ``bench/results.md``.

    sudo make bench                                 # all sections, short defaults (< 10 min)
    sudo make bench BENCH_ARGS="--duration 30"      # longer workload runs
    python3 bench/run.py --only symbolize --runs 7  # one section

Sections: overhead (record overhead), startup, size (file size), report, symbolize,
timeline (the timeline page of a 1-hour series in Chromium), python (what Python
frames cost: bench/python_cost.py), unwind (the .eh_frame unwinder: bench/unwind.py;
both short runs here, run them alone for longer ones), buckets (record CPU with and
without 100 ms time buckets: bench/bucket_cost.py). The
size and report sections use the recordings of the overhead section (size makes it run
when it is not selected; report alone records the workload once with bee and once with
perf at the highest frequency). Each section's raw numbers are kept in ``bench/work/`` (ignored
by git) so that ``--only`` re-renders ``results.md`` with the other sections' last results.
Needs root (BPF, perf system-wide). Standard library only; bee's modules are used through
``bench/bee_helper.py`` run with the venv's python.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bucket_cost
import filesize
import record_overhead
import recorders
import report_time
import startup
import symbolization
import timeline_open
from common import (
    BENCH,
    NCPU,
    ROOT,
    VENV_PY,
    BenchError,
    build_workload,
    calibrate,
    end_children,
    load_average,
)
from render import render

SECTIONS = ("overhead", "startup", "size", "report", "symbolize", "timeline", "python",
            "unwind", "buckets")
WORK = BENCH / "work"  # raw results per section, one folder per results file (git-ignored)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=2.0,
                   help="seconds of workload per overhead measurement (default 2)")
    p.add_argument("--runs", type=int, default=5, help="interleaved runs per section (default 5)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 2 runs, 1 s, 99 Hz only (numbers not for comparison)")
    p.add_argument("--only", action="append", choices=SECTIONS,
                   help="run only this section (repeatable)")
    p.add_argument("--freq", type=int, action="append",
                   help="sampling frequency for the overhead section (default 99 and 999)")
    p.add_argument("--output", type=Path, default=BENCH / "results.md")
    p.add_argument("--baseline-bee", type=Path,
                   help="another bee executable (e.g. main's checkout's .venv/bin/bee) "
                   "measured beside this one in section 1 as bee-base")
    p.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    p.add_argument("--render-only", action="store_true",
                   help="only rewrite the results file from its stored results in bench/work")
    a = p.parse_args(argv)
    if a.quick:
        a.runs, a.duration = min(a.runs, 2), min(a.duration, 1.0)
        a.freq = a.freq or [99]
    a.freq = sorted(set(a.freq or [99, 999]))
    if a.runs < 1 or a.duration <= 0:
        p.error("--runs and --duration must be positive")
    return a


def _sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the clean-up finish
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    print(f"bench: signal {signum}: ending the recorders and stopping", file=sys.stderr,
          flush=True)
    raise SystemExit(f"bench: stopped by signal {signum}")


def main(argv: list[str]) -> int:
    """Run the selected sections and write the results file."""
    args = parse_args(argv)
    if args.render_only:
        stored = _stored(_state_dir(args.output))
        if not stored:
            print("bench: nothing stored in bench/work yet", file=sys.stderr)
            return 1
        state = _state_dir(args.output)
        meta_file = state / "meta.json"
        meta = (json.loads(meta_file.read_text()) if meta_file.exists()
                else max((b["meta"] for b in stored.values()), key=lambda m: m["date"]))
        args.output.write_text(render(stored, machine_info(), meta))
        return 0
    if os.geteuid() != 0:
        print("bench: needs root (BPF and system-wide perf); run: sudo make bench",
              file=sys.stderr)
        return 2
    for tool in ("perf", "gcc", "nm", "readelf", "addr2line", "llvm-symbolizer"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed (scripts/setup.sh installs it)",
                  file=sys.stderr)
            return 2
    if not VENV_PY.exists():
        print(f"bench: {VENV_PY} missing; run scripts/setup.sh", file=sys.stderr)
        return 2
    # A shell starts background jobs with SIGINT ignored, and children would inherit that:
    # recorders must stop on SIGINT, so give this process (hence them) the usual handling.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    selected = list(args.only or SECTIONS)
    if args.baseline_bee is not None:
        recorders.BASELINE_BEE = args.baseline_bee.resolve()
    state = _state_dir(args.output)
    state.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bee-bench-"))
    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f} s] {msg}", flush=True)

    ctx: dict[str, Any] = {"runs": args.runs, "freqs": args.freq, "work": work, "log": log,
                           "buildid_dir": work / "perf-buildids", "threads": NCPU}
    ctx["buildid_dir"].mkdir()
    meta = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "runs": args.runs, "duration": args.duration, "freqs": args.freq,
            "quick": args.quick, "load_before": load_average()}
    results: dict[str, Any] = {}
    try:
        compile_bee()
        ctx["workload"] = build_workload(work)
        recorded: dict[str, Any] = {}
        if {"overhead", "size", "report"} & set(selected):
            ctx["iters"] = calibrate(ctx["workload"], args.duration, NCPU)
            if {"overhead", "size"} & set(selected):
                log(f"section overhead: {ctx['iters']} iterations \u00d7 {NCPU} threads")
                recorded = results["overhead"] = record_overhead.run(ctx)
            else:  # section 4 alone: one bee and one perf recording are its inputs
                log(f"recordings for section report: {ctx['iters']} iterations \u00d7 "
                    f"{NCPU} threads")
                recorded = record_overhead.recordings(ctx)
        if "startup" in selected:
            log("section startup")
            results["startup"] = startup.run(ctx)
        if "size" in selected:
            log("section size")
            results["size"] = filesize.run(ctx, recorded)
        if "report" in selected:
            log("section report")
            results["report"] = report_time.run(ctx, recorded)
        if "symbolize" in selected:
            log("section symbolize")
            results["symbolize"] = symbolization.run(ctx)
        if "timeline" in selected:
            log("section timeline")
            results["timeline"] = timeline_open.run(ctx)
        if "buckets" in selected:
            log("section buckets")
            results["buckets"] = bucket_cost.run(ctx)
        for name, script, extra in (("python", "python_cost.py", [str(PY_SECONDS)]),
                                    ("unwind", "unwind.py", ["--seconds", str(PY_SECONDS)])):
            if name in selected:
                log(f"section {name}")
                results[name] = _script_section(script, extra)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; recorders ended, nothing written", file=sys.stderr)
        return 130
    finally:
        end_children()
        if args.keep:
            print(f"bench: work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta["elapsed_s"] = time.monotonic() - t_start
    meta["load_after"] = load_average()
    meta["sections"] = [s for s in SECTIONS if s in results]
    for name, res in results.items():
        (state / f"{name}.json").write_text(json.dumps({"meta": meta, "result": res},
                                                       default=str, indent=1))
    (state / "meta.json").write_text(json.dumps(meta))
    args.output.write_text(render(_stored(state), machine_info(), meta))
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    log(f"wrote {shown} in {meta['elapsed_s']:.0f} s")
    return 0


PY_SECONDS = 2  # per run in the python and unwind sections


def _script_section(script: str, extra: list[str]) -> dict[str, Any]:
    """Run a stand-alone benchmark script; its Markdown output is the section."""
    res = subprocess.run([str(VENV_PY), str(BENCH / script), *extra], capture_output=True,
                         text=True, timeout=1800, check=False)
    if res.returncode != 0:
        raise BenchError(f"{script} failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
    return {"markdown": res.stdout.strip()}


def compile_bee() -> None:
    """Byte-compile bee's packages, as pip does when it installs a wheel.

    The venv holds an editable install, whose modules Python compiles on import; with
    PYTHONDONTWRITEBYTECODE set (or a read-only checkout) it would compile them again at
    every launch, and every timed `bee` command would pay for it.
    """
    pkgs = [str(ROOT / p) for p in ("bee", "bee_contract", "bee_record", "bee_report")]
    subprocess.run([str(VENV_PY), "-m", "compileall", "-q", *pkgs], check=True,
                   stdout=subprocess.DEVNULL)


def _state_dir(output: Path) -> Path:
    """Where the raw results behind ``output`` are kept (``bench/work/<stem>``)."""
    return WORK / output.stem


def _stored(state: Path) -> dict[str, Any]:
    """Last stored results of every section."""
    stored = {}
    for name in SECTIONS:
        f = state / f"{name}.json"
        if f.exists():
            stored[name] = json.loads(f.read_text())
    return stored


def _first_line(argv: list[str], match: str = "") -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return "?"
    for line in (out.stdout + out.stderr).splitlines():
        if match in line and line.strip():
            return line.strip()
    return "?"


def machine_info() -> dict[str, str]:
    """CPU, cores, kernel, and the versions of every tool compared."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    git = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    bee_v = _first_line([str(VENV_PY), "-c",
                         "import bee_contract; print(bee_contract.__version__)"])
    return {
        "CPU": f"{model} ({NCPU} CPUs online, {platform.machine()})",
        "memory": mem,
        "kernel": platform.release(),
        "OS": _first_line(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "bee": f"{bee_v} (git {git}{', uncommitted changes' if dirty != '?' else ''})",
        "perf": _first_line(["perf", "--version"]),
        "bcc": "python3-bpfcc " + _first_line(
            ["dpkg-query", "-W", "-f", "${Version}\n", "python3-bpfcc"]),
        "llvm-symbolizer": _first_line(["llvm-symbolizer", "--version"], "version"),
        "addr2line": _first_line(["addr2line", "--version"]),
        "gcc": _first_line(["gcc", "--version"]),
        "python": _first_line([str(VENV_PY), "--version"]),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Section 4: time from a recording to folded stacks (bee) or text output (perf).

Inputs are one bee file and one perf.data of section 1 at the highest frequency (same
workload, same run). bee runs with ``XDG_CACHE_HOME`` set to a new folder (*empty*) or to
one that a previous report filled (*warm*). perf reads the same ``--buildid-dir`` its
recording filled. Every command writes its output to a file; tools are interleaved run by
run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from common import (
    BEE,
    HELPER,
    VENV_PY,
    BenchError,
    fmt_spread,
    import_times,
    load_average,
    ratios,
    rotated,
    run_timed,
    table,
)
from whys import breakdown_parts

_LINE = re.compile(r"[^;\s]+:\d+")
WORKLOAD_COMM = "workload"
SLOW_S, SLOW_RUNS = 10.0, 2  # a command slower than this runs only this many times


def _argv(tool: str, bee_file: Path, perf_file: Path, out: Path,
          buildid_dir: Path) -> tuple[list[str], Path | None]:
    """(command, file to send stdout to or None when the command writes ``out`` itself)."""
    perf = ["perf", "--buildid-dir", str(buildid_dir)]
    if tool.startswith("bee"):
        lines = ["--lines", "--comm", WORKLOAD_COMM] if "--lines" in tool else []
        return [str(BEE), "report", str(bee_file), "--format", "folded", *lines,
                "-o", str(out)], None
    return {
        "perf script": [*perf, "script", "-i", str(perf_file)],
        "perf script +srcline": [*perf, "script", "-F", "+srcline", "--comms", WORKLOAD_COMM,
                                 "-i", str(perf_file)],
        "perf report": [*perf, "report", "--stdio", "-i", str(perf_file)],
        "perf report srcline": [*perf, "report", "--stdio", "--no-children", "--comms",
                                WORKLOAD_COMM, "-F", "overhead,sym,srcline", "-i",
                                str(perf_file)],
    }[tool], out


TOOLS = ["bee folded empty", "bee folded warm", "bee --lines empty", "bee --lines warm",
         "perf script", "perf script +srcline", "perf report", "perf report srcline"]


def run(ctx: dict[str, Any], overhead: dict[str, Any]) -> dict[str, Any]:
    """Measure reports of the last run's highest-frequency bee and perf files."""
    freq = max(ctx["freqs"])
    files = {m["tool"]: Path(m["file"]) for m in overhead["measurements"]
             if m["freq"] == freq and m.get("file") and m["run"] == 0}
    if "bee" not in files or "perf" not in files:
        raise BenchError("section 1 left no bee and perf recordings to report on")
    work: Path = ctx["work"] / "report"
    work.mkdir(exist_ok=True)
    warm = work / "cache-warm"
    ms: list[dict[str, Any]] = []
    errors: list[str] = []
    timeout = ctx.get("report_timeout", 300.0)
    # fill the warm cache (bee) and perf's build-id cache / page cache (not measured)
    for tool in ("bee folded warm", "bee --lines warm", "perf report"):
        argv, to = _argv(tool, files["bee"], files["perf"], work / "prime.out",
                         ctx["buildid_dir"])
        run_timed(argv, stdout_path=to, env=dict(os.environ, XDG_CACHE_HOME=str(warm)),
                  timeout=timeout, check=False)
    slow: set[str] = set()
    failed: dict[str, int] = {}
    for r in range(ctx["runs"]):
        for tool in rotated(TOOLS, r):
            if tool in slow:
                continue
            empty = work / "cache-empty"
            shutil.rmtree(empty, ignore_errors=True)
            env = dict(os.environ, XDG_CACHE_HOME=str(warm if "warm" in tool else empty))
            out = work / f"{tool.replace(' ', '_')}.out"
            argv, to = _argv(tool, files["bee"], files["perf"], out, ctx["buildid_dir"])
            try:
                t = run_timed(argv, stdout_path=to, env=env, timeout=timeout)
            except BenchError as exc:
                errors.append(f"run {r} {tool}: {exc}")
                ctx["log"](f"  ! {errors[-1]}")
                failed[tool] = failed.get(tool, 0) + 1
                if "timed out" in str(exc) or failed[tool] >= 2:
                    slow.add(tool)  # do not retry what timed out or failed twice
                continue
            m = {"run": r, "tool": tool, "wall": t.wall, "cpu": t.cpu,
                 "out_bytes": out.stat().st_size if out.exists() else 0}
            if tool.startswith("bee --lines") and out.exists():
                m["has_lines"] = bool(_LINE.search(out.read_text(errors="replace")))
            ms.append(m)
            ctx["log"](f"  run {r} {tool:22s} {t.wall:.3f} s")
            runs_done = sum(1 for x in ms if x["tool"] == tool)
            if t.wall > timeout / 3 or (t.wall > SLOW_S and runs_done >= SLOW_RUNS):
                slow.add(tool)  # keep the suite's time bounded
    breakdown = []
    for _ in range(min(3, ctx["runs"])):
        try:
            t = run_timed([VENV_PY, HELPER, "report-breakdown", files["bee"],
                           work / "breakdown.out"],
                          env=dict(os.environ, XDG_CACHE_HOME=str(warm)), timeout=timeout)
            breakdown.append(json.loads([ln for ln in t.stdout.splitlines()
                                         if ln.startswith("{")][-1]))
        except (BenchError, IndexError, ValueError) as exc:
            errors.append(f"report breakdown: {exc}")
            break
    imports = import_times(_argv("bee folded warm", files["bee"], files["perf"],
                                work / "imports.out", ctx["buildid_dir"])[0],
                          dict(os.environ, XDG_CACHE_HOME=str(warm)))
    return {"measurements": ms, "errors": errors, "freq": freq, "breakdown": breakdown,
            "imports": imports, "load_average": load_average(),
            "inputs": overhead.get("inputs", "of section 1, run 0"),
            "bee_bytes": files["bee"].stat().st_size,
            "perf_bytes": files["perf"].stat().st_size}


def _series(ms: list[dict[str, Any]], tool: str, key: str, runs: int) -> list[Any]:
    by = {m["run"]: m.get(key) for m in ms if m["tool"] == tool}
    return [by.get(r) for r in range(runs)]


def summarize(res: dict[str, Any], runs: int) -> tuple[str, dict[str, Any]]:
    """Markdown for section 4 and the numbers the targets need."""
    ms = res["measurements"]
    rows = [[t, fmt_spread(_series(ms, t, "wall", runs), 3, unit=" s"),
             fmt_spread(_series(ms, t, "cpu", runs), 3, unit=" s"),
             fmt_spread(_series(ms, t, "out_bytes", runs), 3, unit=" B")] for t in TOOLS]
    pairs = [("bee folded warm", "perf report"), ("bee folded empty", "perf report"),
             ("bee folded warm", "perf script"), ("bee folded empty", "perf script"),
             ("bee --lines warm", "perf report srcline"),
             ("bee --lines empty", "perf report srcline"),
             ("bee --lines warm", "perf script +srcline"),
             ("bee folded empty", "bee folded warm")]
    ratio_rows, head = [], {}
    for a, b in pairs:
        r = ratios(_series(ms, a, "wall", runs), _series(ms, b, "wall", runs))
        if not r:  # unpaired (a slow peer ran once): compare medians
            sa = [v for v in _series(ms, a, "wall", runs) if v is not None]
            sb = [v for v in _series(ms, b, "wall", runs) if v is not None]
            r = ratios([sorted(sa)[len(sa) // 2]], [sorted(sb)[len(sb) // 2]]) if sa and sb \
                else []
        ratio_rows.append([f"{a} / {b}", fmt_spread(r, 3)])
        head[f"{a}/{b}"] = r
    has_lines = [m.get("has_lines") for m in ms if "has_lines" in m]
    lines_note = ("`bee report --lines` output contains file:line frames." if any(has_lines)
                  else "`bee report --lines` output has no file:line frames yet in this "
                  "build, so its rows measure the same work as without it.")
    empty = [v for v in _series(ms, "bee folded empty", "wall", runs) if v is not None]
    warm = [v for v in _series(ms, "bee folded warm", "wall", runs) if v is not None]
    cache_note = ""
    if empty and warm:
        gain = 1 - sorted(warm)[len(warm) // 2] / sorted(empty)[len(empty) // 2]
        cache_note = (f" The warm cache saves {gain * 100:.0f} % of bee's report time"
                      + (" (close: the symbol cache does little for a report yet)."
                         if abs(gain) < 0.1 else "."))
    parts = breakdown_parts(res.get("breakdown") or [])
    if parts:
        cache_note += (" Where a warm `bee report` goes (in-process, `bench/bee_helper.py "
                       "report-breakdown`, median of the runs): "
                       + ", ".join(f"{n} {v:.3f} s" for n, v in parts) + ".")
    md = [
        f"One system-wide recording of the workload at {res['freq']} Hz, "
        f"{res.get('inputs', 'of section 1, run 0')} (bee file {res['bee_bytes']:,} B, "
        f"perf.data {res['perf_bytes']:,} B, same workload, with whatever else ran on the "
        "machine then)" + (f"; load average after the runs {res['load_average']}"
                           if res.get("load_average") else "") + ". Wall and CPU (whole process "
        "tree) median [min\u2013max]; output to a file. bee: `bee report FILE --format folded "
        "[--lines]`; perf: `perf script [-F +srcline]`, `perf report --stdio [-F "
        "overhead,sym,srcline]`. The source-line rows are restricted to the workload's "
        "process (`--comm workload` / `--comms workload`, and `--no-children` for perf "
        "report): perf 6.1 dies of SIGPIPE in `perf script -F +srcline` and in children "
        "mode when a sampled process runs an executable mapped from a memfd (addr2line "
        "cannot open it), which this machine has. A command slower than "
        f"{SLOW_S:g} s runs {SLOW_RUNS} times only. " + lines_note + cache_note,
        "",
        table(["command", "wall", "CPU", "output"], rows),
        "",
        table(["ratio (wall)", "median [min\u2013max]"], ratio_rows),
    ]
    imports = res.get("imports") or []
    if imports:
        top = ", ".join(f"`{n}` {t:.3f} s" for n, t in imports[:5])
        md += ["", f"Imports of one warm `bee report` run (`python -X importtime`, top level, "
                   f"cumulative): {sum(t for _, t in imports):.2f} s in all; largest {top}."]
    if res["errors"]:
        md += ["", "Failed measurements:", ""] + [f"- {e}" for e in res["errors"]]
    return "\n".join(md), head

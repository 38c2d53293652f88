"""Section 3: bytes per sample and per unique stack, bee against perf.data and pprof.

The files are those of section 1 (same workload, same durations, bee and perf interleaved
in the same runs). Samples and unique stacks of a bee file come from its own decoder
(``bench/bee_helper.py stats``); of a perf.data from ``perf script -F ip`` (one block of
call-chain addresses per sample). A *unique stack* is a distinct full call chain (user +
kernel) in both. The gzipped pprof is ``bee report FILE --format pprof -o x.pb.gz`` of the
same bee file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import BEE, HELPER, VENV_PY, BenchError, fmt_spread, ratios, run_timed, table


def bee_stats(path: Path) -> dict[str, int]:
    """Samples and unique full stacks of a bee recording."""
    out = run_timed([VENV_PY, HELPER, "stats", path], timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def perf_stats(path: Path, buildid_dir: Path) -> dict[str, int]:
    """Samples and unique full call chains of a perf.data file."""
    res = run_timed(["perf", "--buildid-dir", buildid_dir, "script", "-F", "ip", "-i", path],
                    timeout=300)
    blocks = [b for b in res.stdout.split("\n\n") if b.strip()]
    return {"samples": len(blocks), "unique_chains": len(set(blocks))}


def pprof_bytes(path: Path, work: Path, env: dict[str, str] | None = None) -> int:
    """Size of the gzipped pprof export of a bee recording."""
    out = work / (path.stem + ".pb.gz")
    run_timed([BEE, "report", path, "--format", "pprof", "-o", out], env=env, timeout=300)
    size = out.stat().st_size
    out.unlink()
    return size


def run(ctx: dict[str, Any], overhead: dict[str, Any]) -> dict[str, Any]:
    """Measure the files that section 1 left."""
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    env = ctx.get("warm_env")
    for m in overhead["measurements"]:
        if m["tool"] not in ("bee", "perf") or not m.get("file"):
            continue
        path = Path(m["file"])
        try:
            if m["tool"] == "bee":
                st = bee_stats(path)
                st["pprof_bytes"] = pprof_bytes(path, ctx["work"], env)
            else:
                st = perf_stats(path, ctx["buildid_dir"])
        except BenchError as exc:
            errors.append(f"{path.name}: {exc}")
            ctx["log"](f"  ! {errors[-1]}")
            continue
        st.update(tool=m["tool"], freq=m["freq"], run=m["run"], bytes=path.stat().st_size)
        rows.append(st)
        ctx["log"](f"  {path.name}: {st['bytes']} B, {st['samples']} samples, "
                   f"{st['unique_chains']} stacks")
    return {"files": rows, "errors": errors}


def _series(fs: list[dict[str, Any]], tool: str, freq: int, fn: Any, runs: int) -> list[Any]:
    by = {f["run"]: fn(f) for f in fs if f["tool"] == tool and f["freq"] == freq}
    return [by.get(r) for r in range(runs)]


def summarize(res: dict[str, Any], runs: int, freqs: list[int]) -> tuple[str, dict[str, Any]]:
    """Markdown for section 3 and the numbers the targets need."""
    fs = res["files"]
    rows, ratio_rows, head = [], [], {}
    notes: list[str] = []
    per_sample = {"bee": lambda f: f["bytes"] / max(1, f["samples"]),
                  "perf": lambda f: f["bytes"] / max(1, f["samples"]),
                  "pprof": lambda f: f["pprof_bytes"] / max(1, f["samples"])}
    per_stack = {"bee": lambda f: f["bytes"] / max(1, f["unique_chains"]),
                 "perf": lambda f: f["bytes"] / max(1, f["unique_chains"]),
                 "pprof": lambda f: f["pprof_bytes"] / max(1, f["unique_chains"])}
    for freq in freqs:
        for kind, tool in (("bee", "bee"), ("pprof.gz (bee report)", "pprof"),
                           ("perf.data", "perf")):
            src = "bee" if tool == "pprof" else tool
            size = _series(fs, src, freq, lambda f, t=tool: f["pprof_bytes" if t == "pprof"
                                                              else "bytes"], runs)
            rows.append([str(freq), kind, fmt_spread(size, 3, unit=" B"),
                         fmt_spread(_series(fs, src, freq, lambda f: f["samples"], runs), 4),
                         fmt_spread(_series(fs, src, freq, lambda f: f["unique_chains"], runs), 4),
                         fmt_spread(_series(fs, src, freq, per_sample[tool], runs), 3, unit=" B"),
                         fmt_spread(_series(fs, src, freq, per_stack[tool], runs), 3, unit=" B")])
        for what, fn in (("bytes per sample", per_sample), ("bytes per unique stack", per_stack)):
            for peer in ("perf", "pprof"):
                src = "bee" if peer == "pprof" else peer
                r = ratios(_series(fs, "bee", freq, fn["bee"], runs),
                           _series(fs, src, freq, fn[peer], runs))
                name = "perf.data" if peer == "perf" else "pprof.gz"
                ratio_rows.append([str(freq), f"bee / {name}", what, fmt_spread(r, 3)])
                head[f"{what}/{peer}/{freq}"] = r
        r = ratios(_series(fs, "bee", freq, lambda f: f["bytes"], runs),
                   _series(fs, "perf", freq, lambda f: f["bytes"], runs))
        ratio_rows.append([str(freq), "bee / perf.data", "file size", fmt_spread(r, 3)])
        lost = _series(fs, "bee", freq, lambda f: f.get("lost", 0), runs)
        kinds = sorted({k for f in fs if f["tool"] == "bee" and f["freq"] == freq
                        for k in f.get("lost_kinds", {})})
        if any(lost):
            notes.append(f"At {freq} Hz bee recorded {fmt_spread(lost, 3)} lost stacks per "
                         f"file ({', '.join(kinds)}; samples whose stack could not be stored).")
    md = [
        "Files of section 1 (system-wide, workload on all CPUs), median [min\u2013max] over the "
        "runs. perf.data also holds idle-CPU samples and its header (build-id table, "
        "synthesized mmap events of every process); bee skips the idle task. Unique stack "
        "= distinct full call chain (user + kernel).",
        "",
        table(["Hz", "file", "bytes", "samples", "unique stacks", "bytes/sample",
               "bytes/unique stack"], rows),
        "",
        table(["Hz", "ratio", "what", "median [min\u2013max]"], ratio_rows),
    ]
    if notes:
        md += ["", *notes]
    if res["errors"]:
        md += ["", "Failed measurements:", ""] + [f"- {e}" for e in res["errors"]]
    return "\n".join(md), head

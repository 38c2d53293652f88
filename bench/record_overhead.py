"""Section 1: slowdown of a CPU-bound workload while recording, and the recorders' own CPU.

For each run and frequency, the tools (none, bee, perf, bcc) are measured one after the
other in an order rotated run by run. Each measurement: launch the recorder, wait until it
samples plus a short settle, run the fixed-work workload (its own CLOCK_MONOTONIC
elapsed time is the number), stop the recorder. BPF statistics are enabled for the whole
section through a BPF_ENABLE_STATS file descriptor (the kernel turns them off when it
closes, even if this process is killed), falling back to the sysctl, restored after.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import recorders
from common import (
    BenchError,
    fmt_spread,
    load_average,
    ratios,
    rotated,
    run_timed,
    table,
    workload_times,
)

SETTLE_S = 0.5  # perf synthesizes every process's maps after opening its events
_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")
_SYS_BPF = 321  # x86_64
_BPF_ENABLE_STATS = 32


@contextlib.contextmanager
def bpf_stats() -> Iterator[str]:
    """Enable kernel BPF run-time statistics for the duration; yields how."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(128)  # enable_stats.type = BPF_STATS_RUN_TIME (0)
    fd = libc.syscall(_SYS_BPF, _BPF_ENABLE_STATS, attr, ctypes.c_uint(len(attr)))
    if fd >= 0:
        try:
            yield "BPF_ENABLE_STATS fd"
        finally:
            os.close(fd)
        return
    before = _SYSCTL.read_text().strip() if _SYSCTL.exists() else None
    if before is None:
        yield "unavailable"
        return
    try:
        _SYSCTL.write_text("1\n")
        yield "sysctl kernel.bpf_stats_enabled=1 (restored)"
    finally:
        _SYSCTL.write_text(before + "\n")


def measure(tool: str, freq: int, exe: Path, iters: int, threads: int, work: Path,
            tag: str, buildid_dir: Path) -> dict[str, Any]:
    """One workload run under ``tool`` ("none" for no recorder)."""
    res: dict[str, Any] = {"tool": tool, "freq": freq}
    wl = [str(exe), str(iters), str(threads)]
    if tool == "none":
        time.sleep(SETTLE_S)
        res["elapsed"], res["wl_cpu"] = workload_times(run_timed(wl).stdout)
        return res
    ext = {"bee": "bee", "bee-base": "bee", "perf": "data", "bcc": "folded"}[tool]
    out = work / f"{tool}-{freq}-{tag}.{ext}"
    argv = recorders.argv_for(tool, freq, out, buildid_dir)
    s = recorders.launch(tool, argv, out)
    try:
        recorders.wait_ready(s)
        time.sleep(SETTLE_S)
        s.begin_steady()
        res["elapsed"], res["wl_cpu"] = workload_times(run_timed(wl).stdout)
    except BaseException:  # a failure or SIGTERM: end it now, keep the exception
        recorders.abort(s)
        raise
    recorders.stop(s)
    recorders.check_output(s)
    rt, cnt = s.bpf_totals()
    res.update(startup_s=s.startup_s, steady_s=s.steady_s, cpu_startup=s.cpu_startup,
               cpu_steady=s.cpu_steady, cpu_teardown=s.cpu_teardown, cpu_total=s.cpu_total,
               cpu_run=None if s.cpu_total is None else s.cpu_total - s.cpu_startup,
               bpf_run_ns=rt if s.bpf else None, bpf_runs=cnt if s.bpf else None,
               file=str(out), bytes=out.stat().st_size)
    return res


def run(ctx: dict[str, Any]) -> dict[str, Any]:
    """Run section 1; returns its results (also used by sections 2-4)."""
    exe, iters, threads = ctx["workload"], ctx["iters"], ctx["threads"]
    tools = ["none", "bee", "perf"] + (["bcc"] if recorders.profile_bpfcc() else [])
    if recorders.BASELINE_BEE is not None:
        tools.append("bee-base")
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    with bpf_stats() as how:
        for r in range(-1, ctx["runs"]):  # run -1 warms caches (perf build-ids, bcc headers)
            for freq in ctx["freqs"][:1] if r < 0 else ctx["freqs"]:
                for tool in rotated(tools, r + freq):
                    try:
                        m = measure(tool, freq, exe, iters, threads, ctx["work"],
                                    f"r{r}", ctx["buildid_dir"])
                    except BenchError as exc:
                        errors.append(f"run {r} {tool} {freq} Hz: {exc}")
                        ctx["log"](f"  ! {errors[-1]}")
                        continue
                    m["run"] = r
                    if r >= 0:
                        results.append(m)
                    ctx["log"](f"  run {r} {freq:4d} Hz {tool:8s} "
                               f"elapsed {m['elapsed']:.3f} s cpu {m.get('cpu_total') or 0:.2f} s")
    return {"measurements": results, "errors": errors, "stats_via": how, "tools": tools,
            "iters": iters, "threads": threads, "load_after": load_average()}


def recordings(ctx: dict[str, Any]) -> dict[str, Any]:
    """One bee and one perf recording of the workload at the highest frequency, shaped as
    :func:`run`'s results: the inputs of section 4 when section 1 is not selected."""
    freq = max(ctx["freqs"])
    results: list[dict[str, Any]] = []
    for tool in ("bee", "perf"):
        m = measure(tool, freq, ctx["workload"], ctx["iters"], ctx["threads"], ctx["work"],
                    "r0", ctx["buildid_dir"])
        m["run"] = 0
        results.append(m)
        ctx["log"](f"  recorded {freq} Hz {tool}: {m['bytes']:,} B")
    return {"measurements": results, "errors": [], "tools": ["bee", "perf"],
            "inputs": "recorded for this section alone (`--only report`), one bee and one perf "
                      "run"}


def _series(ms: list[dict[str, Any]], tool: str, freq: int, key: str, runs: int) -> list[Any]:
    by_run = {m["run"]: m.get(key) for m in ms if m["tool"] == tool and m["freq"] == freq}
    return [by_run.get(r) for r in range(runs)]


def summarize(res: dict[str, Any], runs: int, freqs: list[int]) -> tuple[str, dict[str, Any]]:
    """Markdown for section 1 and the numbers the targets need."""
    ms = res["measurements"]
    peers = [t for t in res["tools"] if t not in ("none", "bee")]
    rows, ratio_rows, headline = [], [], {}
    for freq in freqs:
        base = _series(ms, "none", freq, "elapsed", runs)
        for tool in res["tools"]:
            el = _series(ms, tool, freq, "elapsed", runs)
            slow = [(e / b - 1) * 100 for e, b in zip(el, base, strict=True)
                    if e is not None and b]
            cpu_s = [c / d if c is not None and d else None for c, d in zip(
                _series(ms, tool, freq, "cpu_steady", runs),
                _series(ms, tool, freq, "steady_s", runs), strict=True)]
            bpf = [ns / n / 1000 if ns is not None and n else None for ns, n in zip(
                _series(ms, tool, freq, "bpf_run_ns", runs),
                _series(ms, tool, freq, "bpf_runs", runs), strict=True)]
            wl_cpu = _series(ms, tool, freq, "wl_cpu", runs)
            infl = [(c / b - 1) * 100 for c, b in zip(
                wl_cpu, _series(ms, "none", freq, "wl_cpu", runs), strict=True) if c and b]
            if tool == "none":
                rows.append([f"{freq}", "none", fmt_spread(el, 4, unit=" s"), "—",
                             fmt_spread(wl_cpu, 4, unit=" s"), "—", "—", "—", "—", "—", "—"])
                continue
            rows.append([
                f"{freq}", tool, fmt_spread(el, 4, unit=" s"), fmt_spread(slow, 2, unit=" %"),
                fmt_spread(infl, 2, unit=" %"),
                fmt_spread(_series(ms, tool, freq, "cpu_startup", runs), 3, unit=" s"),
                fmt_spread([c * 100 for c in cpu_s if c is not None], 2, unit=" %"),
                fmt_spread(_series(ms, tool, freq, "cpu_teardown", runs), 3, unit=" s"),
                fmt_spread(_series(ms, tool, freq, "cpu_run", runs), 3, unit=" s"),
                fmt_spread(_series(ms, tool, freq, "cpu_total", runs), 3, unit=" s"),
                fmt_spread([b for b in bpf if b is not None], 3, unit=" µs")
                if any(b is not None for b in bpf) else "—",
            ])
        for peer in peers:
            for label, key in (("CPU while sampling", "cpu_steady"),
                               ("CPU after start-up (sampling + tear-down)", "cpu_run"),
                               ("CPU total (launch to exit)", "cpu_total")):
                r = ratios(_series(ms, "bee", freq, key, runs), _series(ms, peer, freq, key, runs))
                ratio_rows.append([f"{freq}", f"bee / {peer}", label, fmt_spread(r, 3)])
                headline[f"{key}/{peer}/{freq}"] = r
            slow_b = [e / b - 1 for e, b in zip(_series(ms, "bee", freq, "elapsed", runs),
                                                base, strict=True) if e is not None and b]
            slow_p = [e / b - 1 for e, b in zip(_series(ms, peer, freq, "elapsed", runs),
                                                base, strict=True) if e is not None and b]
            ratio_rows.append([f"{freq}", f"bee / {peer}", "workload slowdown (pp difference)",
                               fmt_spread([(a - b) * 100 for a, b in zip(slow_b, slow_p,
                                                                          strict=False)], 2,
                                          unit=" pp")])
            if peer == "bcc":
                r = ratios([n / c if n is not None and c else None for n, c in zip(
                    _series(ms, "bee", freq, "bpf_run_ns", runs),
                    _series(ms, "bee", freq, "bpf_runs", runs), strict=True)],
                    [n / c if n is not None and c else None for n, c in zip(
                        _series(ms, "bcc", freq, "bpf_run_ns", runs),
                        _series(ms, "bcc", freq, "bpf_runs", runs), strict=True)])
                ratio_rows.append([f"{freq}", "bee / bcc", "BPF run time per sample",
                                   fmt_spread(r, 3)])
    md = [
        f"Workload: `bench/workload.c` (-O2, frame pointers), {res['threads']} threads \u00d7 "
        f"{res['iters']} iterations of fixed work, its own CLOCK_MONOTONIC elapsed time. "
        "Recorders record the whole system; each is launched, waited for until it samples "
        f"(+{SETTLE_S} s), then the workload runs, then the recorder gets SIGINT. "
        f"BPF statistics via {res['stats_via']}. Median [min\u2013max] over the runs.",
        "",
        "*workload CPU* = the workload's own CPU time (CLOCK_PROCESS_CPUTIME_ID; for "
        "recorders, its growth over no recorder): it includes the sampling work the kernel "
        "does in the workload's context but not the recorder's own process, and unlike "
        "elapsed time it does not depend on what else runs on the machine. "
        "Recorder CPU columns are the recorder's whole process tree: *start-up* = launch to the "
        "workload's start (bcc compile, perf set-up, then the settle time), *steady* = CPU "
        "from the workload's start to SIGINT as % of one CPU, "
        "*tear-down* = SIGINT to exit (bee: file write; perf: build-id pass; bcc: "
        "symbolize + print), *after start-up* = steady + tear-down (the target's measure: "
        "perf defers its work to the end, so comparing the sampling phase alone would "
        "compare bee's drains with perf doing nothing), *total* from `wait4` rusage. "
        "*BPF/sample* = kernel run_time_ns / run_cnt of the recorder's BPF programs (perf "
        "uses none).",
        "",
        table(["Hz", "recorder", "workload elapsed", "slowdown", "workload CPU", "CPU start-up",
               "CPU steady", "CPU tear-down", "CPU after start-up", "CPU total",
               "BPF/sample"], rows),
        "",
        table(["Hz", "ratio", "what", "median [min\u2013max]"], ratio_rows),
    ]
    for freq in freqs:
        base = [b for b in _series(ms, "none", freq, "elapsed", runs) if b]
        if len(base) >= 2 and min(base) > 0:
            spread = (max(base) / min(base) - 1) * 100
            if spread > 5:
                md += ["", f"At {freq} Hz the baseline's elapsed time itself varied by "
                           f"{spread:.0f} % between runs (other load on the machine, load "
                           f"average after: {res.get('load_after', '?')}): elapsed slowdowns "
                           "smaller than that are noise; the workload CPU column is the "
                           "robust measure of the sampling cost."]
    if res["errors"]:
        md += ["", "Failed measurements:", ""] + [f"- {e}" for e in res["errors"]]
    return "\n".join(md), headline

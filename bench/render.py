"""Render ``bench/results.md`` from the stored results of each section."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import bucket_cost
import filesize
import record_overhead
import report_time
import startup
import symbolization
import timeline_open
from common import table
from whys import explain

TITLES = {
    "overhead": "1. Record overhead",
    "startup": "2. Start-up",
    "size": "3. File size",
    "report": "4. Report",
    "symbolize": "5. Symbolization",
    "timeline": "6. Timeline page",
    "python": "7. Python frames: cost per sample and per file byte",
    "unwind": "8. The .eh_frame unwinder",
    "buckets": "9. Time buckets: what they cost the recorder",
}


def _med(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def _summarize(name: str, res: dict[str, Any], runs: int,
               freqs: list[int]) -> tuple[str, dict[str, Any]]:
    if name == "overhead":
        return record_overhead.summarize(res, runs, freqs)
    if name == "startup":
        return startup.summarize(res, runs)
    if name == "size":
        return filesize.summarize(res, runs, freqs)
    if name == "report":
        return report_time.summarize(res, runs)
    if name == "timeline":
        return timeline_open.summarize(res, runs)
    if name == "buckets":
        return bucket_cost.summarize(res, runs)
    if name in ("python", "unwind"):
        return str(res["markdown"]), {}
    return symbolization.summarize(res, runs)


def _summaries(stored: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {name: _summarize(name, blob["result"], blob["meta"]["runs"], blob["meta"]["freqs"])
            for name, blob in stored.items()}


def _verdict(value: float | None, ok: Callable[[float], bool], fmt: str = "{:.3g}",
             why: str = "") -> tuple[str, str, str]:
    if value is None:
        return "n/a", "NOT MEASURED", ""
    passed = ok(value)
    return fmt.format(value), "PASS" if passed else "MISS", "" if passed else why


def targets(sums: dict[str, tuple[str, dict[str, Any]]], stored: dict[str, Any],
            whys: dict[str, str]) -> list[list[str]]:
    """Rows of the targets table: target, measured (median), verdict, why (for a miss)."""
    rows: list[list[str]] = []
    if "overhead" in sums:
        head = sums["overhead"][1]
        dur = stored["overhead"]["meta"]["duration"]
        for freq in stored["overhead"]["meta"]["freqs"]:
            v = _med(head.get(f"cpu_run/perf/{freq}"))
            rows.append(["record CPU (start-up excluded) \u2264 \u00bd perf record's",
                         f"{freq} Hz, {dur:g} s runs",
                         *_verdict(v, lambda x: x <= 0.5, "{:.2f}\u00d7",
                                   whys.get(f"cpu/{freq}", ""))])
        for freq in stored["overhead"]["meta"]["freqs"]:
            v = _med(head.get(f"cpu_total/perf/{freq}"))
            rows.append(["record CPU, launch to exit \u2264 \u00bd perf record's (info)",
                         f"{freq} Hz, {dur:g} s runs",
                         *_verdict(v, lambda x: x <= 0.5, "{:.2f}\u00d7",
                                   whys.get(f"cpu_total/{freq}", ""))])
    if "buckets" in sums:
        head = sums["buckets"][1]
        for freq in stored["buckets"]["meta"]["freqs"]:
            for key, what in (("after_s", "after start-up"), ("total_s", "launch to exit")):
                v = _med(head.get(f"{key}/{freq}"))
                rows.append([f"record CPU {what} with 100 ms buckets ≤ "
                             f"{bucket_cost.TARGET:g}\u00d7 without (one bucket per run)",
                             f"{freq} Hz, {bucket_cost.SECONDS} s runs",
                             *_verdict(v, lambda x: x <= bucket_cost.TARGET, "{:.3f}\u00d7",
                                       whys.get(f"buckets/{key}/{freq}", ""))])
    if "size" in sums:
        head = sums["size"][1]
        for freq in stored["size"]["meta"]["freqs"]:
            v = _med(head.get(f"bytes per sample/perf/{freq}"))
            rows.append(["file ≤ ⅕ of perf.data (bytes per sample)", f"{freq} Hz",
                         *_verdict(v, lambda x: x <= 0.2, "{:.3f}\u00d7",
                                   whys.get("size", ""))])
    if "report" in sums:
        head = sums["report"][1]
        v = _med(head.get("bee folded warm/perf report"))
        rows.append(["warm `bee report` ≤ `perf report --stdio`", "same workload",
                     *_verdict(v, lambda x: x <= 1, "{:.2f}\u00d7", whys.get("report", ""))])
    if "symbolize" in sums:
        head = sums["symbolize"][1]
        lines_e, lines_w = head.get("lines", ("", ""))
        for name in symbolization.BINARIES:
            v = _med(head.get(f"{name}|{lines_e}|llvm-symbolizer -i"))
            rows.append([f"symbolize names+lines+inlines, empty cache ≤ 3\u00d7 llvm-symbolizer "
                         f"({lines_e})", name,
                         *_verdict(v, lambda x: x <= 3, "{:.2f}\u00d7",
                                   whys.get(f"sym_empty/{name}", ""))])
            v = _med(head.get(f"{name}|{lines_w}|llvm-symbolizer -i"))
            rows.append([f"symbolize names+lines+inlines, warm cache ≤ llvm-symbolizer "
                         f"({lines_w})", name,
                         *_verdict(v, lambda x: x <= 1, "{:.2f}\u00d7",
                                   whys.get(f"sym_warm/{name}", ""))])
            v = _med(head.get(f"{name}|names-warm-inproc/llvm-symbolizer names"))
            rows.append(["names only, warm cache (in-process load + lookups) ≤ ¼ "
                         "llvm-symbolizer --no-inlines", name,
                         *_verdict(v, lambda x: x <= 0.25, "{:.3f}\u00d7",
                                   whys.get(f"names/{name}", ""))])
    if "timeline" in sums:
        v = _med(sums["timeline"][1].get("painted"))
        rows.append([f"timeline page opens in < {timeline_open.TARGET_S:g} s of browser time",
                     "1 h, 999 Hz, system-wide series",
                     *_verdict(v, lambda x: x < timeline_open.TARGET_S, "{:.2f} s",
                               "page parse, JSON decode and the first flame graph")])
    return rows


def render(stored: dict[str, Any], machine: dict[str, str], meta: dict[str, Any],
           whys: dict[str, str] | None = None) -> str:
    """The whole results file."""
    sums = _summaries(stored)
    whys = whys if whys is not None else explain(stored)
    out = ["# bee benchmarks: side by side with perf and bcc", ""]
    if meta.get("quick"):
        out += ["**QUICK RUN (`--quick`): too few runs to compare; do not quote.**", ""]
    out += [
        "Generated by `make bench` (`bench/run.py`); do not edit by hand. Ratios are "
        "bee / peer, computed per run from measurements interleaved run by run (tools in an "
        "order rotated each run, so drift hits all alike), then shown as median "
        "[min\u2013max] over the runs.",
        "",
        f"Date: {meta['date']}; this invocation ran {', '.join(meta['sections']) or 'nothing'}"
        f" in {meta['elapsed_s']:.0f} s; load average before {meta['load_before']}, after "
        f"{meta['load_after']}.",
        "",
        table(["machine", ""], [[k, v] for k, v in machine.items()]),
        "",
        "## Targets",
        "",
        table(["target", "case", "measured (median ratio)", "verdict", "why (for a miss)"],
              targets(sums, stored, whys)),
        "",
    ]
    for name, title in TITLES.items():
        if name not in sums:
            continue
        m = stored[name]["meta"]
        out += [f"## {title}", "",
                f"*{m['runs']} runs, measured {m['date']}"
                + (f", workload {m['duration']:g} s" if name == "overhead" else "") + ".*", "",
                sums[name][0], ""]
    return "\n".join(out)

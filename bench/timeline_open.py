"""Section 6: the timeline page of a 1-hour, 999 Hz, system-wide series, in Chromium.

The series is synthetic (``bench/synth_series.py``: 60 one-minute files on 2 CPUs, 100 ms
buckets, 2000 distinct stacks in 120 threads), because an hour of real recording per
benchmark run is not affordable. ``bee report SERIES --format timeline`` is timed once
(CPU, wall, page size); then the page is opened in headless Chromium ``runs`` times
(``bench/bee_helper.py open-timeline``), each time measuring in the browser's own clock
from navigation start: *ready* (the script has drawn the heat map and the flame graph of
the whole hour) and *painted* (two animation frames later: style, layout and paint
done), then the redraw of the flame graph for a 10-minute selection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import BEE, BENCH, HELPER, VENV_PY, BenchError, fmt_spread, run_timed, table

SYNTH = BENCH / "synth_series.py"
TARGET_S = 3.0


def run(ctx: dict[str, Any]) -> dict[str, Any]:
    """Make the series, its page, and open it ``runs`` times."""
    work: Path = ctx["work"] / "timeline"
    work.mkdir(exist_ok=True)
    log = ctx["log"]
    log("timeline: writing a synthetic 1-hour 999 Hz series")
    made = run_timed([VENV_PY, SYNTH, work / "series"], timeout=900)
    series = json.loads(made.stdout.strip().splitlines()[-1])
    files = sorted((work / "series").glob("*.bee"))
    page = work / "timeline.html"
    log("timeline: bee report --format timeline")
    rep = run_timed([BEE, "report", *files, "--format", "timeline", "-o", page], timeout=1800,
                    check=False)
    if rep.returncode != 0:
        raise BenchError(f"bee report --format timeline failed: {rep.stderr.strip()[-300:]}")
    log("timeline: opening it in headless Chromium")
    opened = run_timed([VENV_PY, HELPER, "open-timeline", page, str(ctx["runs"])], timeout=900)
    return {"series": series, "series_bytes": sum(f.stat().st_size for f in files),
            "report_wall": rep.wall, "report_cpu": rep.cpu, "page_bytes": page.stat().st_size,
            **json.loads(opened.stdout.strip().splitlines()[-1])}


def summarize(res: dict[str, Any], runs: int) -> tuple[str, dict[str, Any]]:
    """Markdown for section 6, and the painted times for the targets table."""
    s = res["series"]
    rows = [
        ["series", f"{s['files']} files, {s['seconds']} s, {s['freq']} Hz \u00d7 {s['cpus']} CPUs: "
                   f"{s['samples']:,} samples in {s['rows']:,} rows, "
                   f"{res['series_bytes'] / 2**20:.1f} MiB"],
        ["`bee report --format timeline`", f"{res['report_wall']:.1f} s wall, "
                                           f"{res['report_cpu']:.1f} s CPU"],
        ["page size", f"{res['page_bytes'] / 2**20:.1f} MiB"],
        ["ready (heat map and flame graph drawn)", fmt_spread(res["ready"], 3, unit=" s")],
        ["painted (two animation frames later)", fmt_spread(res["painted"], 3, unit=" s")],
        ["redraw for a 10-minute selection", fmt_spread(res["select_ms"], 3, unit=" ms")],
    ]
    md = [
        "A synthetic one-hour `--rotate 60` series of a busy 2-CPU host at 999 Hz "
        "(`bench/synth_series.py`), rendered by `bee report --format timeline` and opened "
        f"in headless Chromium {runs} times; browser times from navigation start, "
        "median [min\u2013max].",
        "",
        table(["what", "measured"], rows),
    ]
    return "\n".join(md), {"painted": res["painted"]}

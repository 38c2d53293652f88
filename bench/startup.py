"""Section 2: time from launching a recorder to its first sample, and where bee's goes.

A one-thread workload runs throughout (so that there is something to sample and one CPU
stays free for the recorder). Per run, in rotated order:

* bee: launch to its ``Recording (...)`` line on stderr (printed right after the
  cpu-clock events are attached, so the first sample follows within 1/F s);
* perf: ``perf record -g -a -k CLOCK_MONOTONIC``, launch to the timestamp of the first
  sample in perf.data (``perf script -F time``, same clock as ours);
* profile-bpfcc: launch to the moment its perf_event descriptors are open (it prints
  nothing before it ends; attaching is its last step before sleeping);
* ``bee --help`` (interpreter + CLI import) and bee's phases measured in-process by
  ``bench/bee_helper.py phases``: ``import bcc``, ``import bee_record``, compile+load
  (``Sampler``: bcc's clang compile, or bee's cache of it), attach.

bee's rows are measured three times: *warm*, with bee's cache folder kept from run to run
(unwind tables; the BPF program is the shipped one, as no run compiles); *first*, that
folder emptied before each run, so the program bee ships loads (a host's first
launch: one shipped program serves every option set, so this is every launch on a host
where bee never compiled); and *cold*, the cache emptied and the shipped program turned
off (``BEE_RECORD_SHIPPED_BPF=""``), so clang compiles: what a launch costs when
``bpf/*.c`` differs from the shipped build (a developer's tree), shown for information.
Each uses a cache folder of its own under the bench's work folder
(``BEE_RECORD_CACHE_DIR``), never the host's; the warm one is filled once before the runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import recorders
from common import (
    BEE,
    HELPER,
    VENV_PY,
    BenchError,
    fmt_spread,
    kill_group,
    ratios,
    rotated,
    run_timed,
    table,
    track,
)

FREQ = 99
#: bee_record.cachedir's environment variable naming the cache root, and bpf_load's naming
#: the folder of shipped programs ("" for none).
CACHE_ENV = "BEE_RECORD_CACHE_DIR"
SHIPPED_ENV = "BEE_RECORD_SHIPPED_BPF"
#: Tool-name suffix of each start-up case: (its label, cache emptied before each run,
#: shipped programs used).
VARIANTS = {"": ("warm", False, True), " first": ("first", True, True),
            " cold": ("cold", True, False)}
LABELS = {v: label for v, (label, _, _) in VARIANTS.items()}
#: A Python process that loads an empty bcc program, then says so (issue 13's baseline).
EMPTY_BCC = ("import sys\nfrom bcc import BPF\nb = BPF(text='int x(void *c){return 0;}')\n"
             "print('loaded', file=sys.stderr, flush=True)\nsys.stdin.read()\n")
#: CPU seconds of compile + load (verifier included): an empty program, or bee's default
#: program (on-CPU, .eh_frame unwinder, Python walker) with its tail-called programs.
COMPILE_CPU = (
    "import resource, sys\nfrom bcc import BPF\n"
    "def cpu():\n    r = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    return r.ru_utime + r.ru_stime\n"
    "if sys.argv[1] == 'empty':\n    c = cpu(); BPF(text='int x(void *c){return 0;}')\n"
    "else:\n    from bee_record.sampler import Sampler, SamplerOptions\n"
    "    c = cpu(); s = Sampler(SamplerOptions(frequency=99)); s.start()\n"
    "print(cpu() - c)\n")


def _first_perf_sample(data: Path, buildid_dir: Path) -> float | None:
    res = run_timed(["perf", "--buildid-dir", buildid_dir, "script", "-F", "time", "-i", data],
                    check=False, timeout=120)
    times = [float(m) for m in re.findall(r"^\s*([0-9]+\.[0-9]+):", res.stdout, re.M)]
    return min(times) if times else None


@contextlib.contextmanager
def _cache_root(root: Path, empty: bool, shipped: bool) -> Iterator[None]:
    """bee's cache root for the processes started in the body (emptied first if asked),
    with or without the programs bee ships."""
    if empty:
        shutil.rmtree(root, ignore_errors=True)
    old = {k: os.environ.get(k) for k in (CACHE_ENV, SHIPPED_ENV)}
    os.environ[CACHE_ENV] = str(root)
    if shipped:
        os.environ.pop(SHIPPED_ENV, None)
    else:
        os.environ[SHIPPED_ENV] = ""
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _variant(tool: str) -> str:
    return next((v for v in VARIANTS if v and tool.endswith(v)), "")


def measure(tool: str, work: Path, tag: str, buildid_dir: Path) -> dict[str, Any]:
    """Launch-to-sampling seconds of one recorder launch (plus its CPU by then).

    A tool ending in " first" or " cold" is the same measurement in that case of
    `VARIANTS` (the module doc).
    """
    v = _variant(tool)
    label, empty, shipped = VARIANTS[v]
    with _cache_root(work / f"bee-cache-{label}", empty=empty, shipped=shipped):
        return _measure(tool.removesuffix(v), work, tag, buildid_dir)


def _measure(tool: str, work: Path, tag: str, buildid_dir: Path) -> dict[str, Any]:
    if tool == "bee --help":
        return {"startup_s": run_timed([BEE, "--help"]).wall}
    if tool == "import bee.cli":
        return {"startup_s": run_timed([VENV_PY, "-c", "import bee.cli"]).wall}
    if tool in ("compile empty", "compile bee"):
        t = run_timed([VENV_PY, "-c", COMPILE_CPU, tool.split()[1]], timeout=120)
        return {"cpu_s": float(t.stdout.strip().splitlines()[-1])}
    if tool == "empty bcc":
        return {"startup_s": _empty_bcc_launch()}
    if tool == "bee phases":
        t = run_timed([VENV_PY, HELPER, "phases", str(FREQ)], timeout=120)
        phases: dict[str, Any] = json.loads(t.stdout.strip().splitlines()[-1])
        return phases
    ext = {"bee": "bee", "perf": "data", "bcc": "folded"}[tool]
    out = work / f"startup-{tool}-{tag}.{ext}"
    argv = recorders.argv_for(tool, FREQ, out, buildid_dir, monotonic=True)
    s = recorders.launch(tool, argv, out)
    try:
        recorders.wait_ready(s)
        if tool == "perf":
            time.sleep(0.3)  # let samples arrive
    except BaseException:  # a failure or SIGTERM: end it now, keep the exception
        recorders.abort(s)
        raise
    recorders.stop(s)
    res: dict[str, Any] = {"startup_s": s.startup_s, "cpu_startup": s.cpu_ready}
    if tool == "perf":
        first = _first_perf_sample(out, buildid_dir)
        if first is None:
            raise BenchError("perf recorded no sample")
        res["startup_s"] = first - s.t_launch
    out.unlink(missing_ok=True)
    return res


def _empty_bcc_launch() -> float:
    """Launch to "loaded" of a Python process loading an empty bcc program, seconds."""
    t0 = time.monotonic()
    p = subprocess.Popen([VENV_PY, "-c", EMPTY_BCC], stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr is not None and p.stdin is not None
        for line in p.stderr:
            if line.startswith("loaded"):
                return time.monotonic() - t0
        raise BenchError("the empty bcc program did not load")
    finally:
        if p.stdin is not None:
            p.stdin.close()
        p.wait(timeout=30)


def run(ctx: dict[str, Any]) -> dict[str, Any]:
    """Run section 2."""
    tools = ["bee", "bee first", "bee cold", "perf"] + (
        ["bcc"] if recorders.profile_bpfcc() else [])
    tools += ["bee --help", "import bee.cli", "bee phases", "bee phases first",
              "bee phases cold", "empty bcc", "compile empty", "compile bee",
              "compile bee first", "compile bee cold"]
    bg = track(subprocess.Popen([str(ctx["workload"]), "0", "1"], stdout=subprocess.DEVNULL,
                                start_new_session=True))
    ms: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        for tool in ("bee", "compile bee"):  # fill the warm cache folder (unwind tables)
            measure(tool, ctx["work"], "prime", ctx["buildid_dir"])
        for r in range(ctx["runs"]):
            for tool in rotated(tools, r):
                try:
                    m = measure(tool, ctx["work"], f"r{r}", ctx["buildid_dir"])
                except BenchError as exc:
                    errors.append(f"run {r} {tool}: {exc}")
                    ctx["log"](f"  ! {errors[-1]}")
                    continue
                m.update(run=r, tool=tool)
                ms.append(m)
                ctx["log"](f"  run {r} {tool:16s} "
                           f"{m.get('startup_s') or m.get('cpu_s') or 0:.3f} s")
    finally:
        kill_group(bg, grace=0.5)
    importtime = _importtime()
    return {"measurements": ms, "errors": errors, "tools": tools, "importtime": importtime}


def _importtime() -> list[tuple[str, float]]:
    """Top cumulative imports of ``import bee.cli`` and of bee's record stage."""
    code = "import bee.cli, bee_record.record, bee_record.sampler, bcc"
    res = run_timed([VENV_PY, "-X", "importtime", "-c", code], check=False)
    rows = []
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 2:  # top-level imports only
            rows.append((m.group(3), int(m.group(1)) / 1e6))
    return sorted(rows, key=lambda x: -x[1])[:8]


def _series(ms: list[dict[str, Any]], tool: str, key: str, runs: int) -> list[Any]:
    by = {m["run"]: m.get(key) for m in ms if m["tool"] == tool}
    return [by.get(r) for r in range(runs)]


def summarize(res: dict[str, Any], runs: int) -> tuple[str, dict[str, Any]]:
    """Markdown for section 2."""
    ms = res["measurements"]
    rows = []
    names = {"bee": "bee (cache warm)", "bee first": "bee (first launch: shipped program)",
             "bee cold": "bee (cold: clang compiles; info)"}
    for tool in ("bee", "bee first", "bee cold", "perf", "bcc", "empty bcc", "bee --help",
                 "import bee.cli"):
        if tool in res["tools"]:
            cpu = _series(ms, tool, "cpu_startup", runs)
            rows.append([names.get(tool, tool),
                         fmt_spread(_series(ms, tool, "startup_s", runs), 3, unit=" s"),
                         fmt_spread([c for c in cpu if c is not None], 3, unit=" s")
                         if any(c is not None for c in cpu) else "\u2014"])
    ratio_rows = []
    head: dict[str, Any] = {}
    for peer in ("perf", "bcc"):
        if peer in res["tools"]:
            for v, label in LABELS.items():
                r = ratios(_series(ms, "bee" + v, "startup_s", runs),
                           _series(ms, peer, "startup_s", runs))
                ratio_rows.append([f"bee ({label}) / {peer}", fmt_spread(r, 3)])
                head[peer if label == "warm" else f"{peer}_{label}"] = r
    keys = ["import_bcc", "import_bee_record", "compile_load", "attach", "detach_close",
            "read_kallsyms"]
    labels = {"import_bcc": "`import bcc`", "import_bee_record": "import bee_record",
              "compile_load": "compile + load (`Sampler`: clang, or bee's cache)",
              "attach": "attach cpu-clock events", "detach_close": "detach + close (at exit)",
              "read_kallsyms": "read /proc/kallsyms (at exit)"}
    phase_rows = []
    for k in keys:
        cells = [fmt_spread(_series(ms, "bee phases" + v, k, runs), 3, unit=" s")
                 for v in LABELS]
        if any(c != "n/a" for c in cells):
            phase_rows.append([labels[k], *cells])
    phase_rows.append(["sum of the start-up phases (first four)", *(
        fmt_spread([sum(m.get(k, 0) for k in keys[:4]) for m in ms if m["tool"] == t], 3,
                   unit=" s") for t in ("bee phases" + v for v in LABELS))])
    # issue 13 item 5: compile + load CPU (best of the runs) and launch ratios, per case
    best = {t: min((m["cpu_s"] for m in ms if m["tool"] == t and "cpu_s" in m), default=None)
            for t in ("compile empty", *("compile bee" + v for v in LABELS))}
    target_rows = []
    for v, label in LABELS.items():
        compile_tool, launch_tool = "compile bee" + v, "bee" + v
        num, den = best[compile_tool], best["compile empty"]
        cr = num / den if num and den else None
        launch = ratios(_series(ms, launch_tool, "startup_s", runs),
                        _series(ms, "empty bcc", "startup_s", runs))
        suffix = "" if label == "warm" else f"_{label}"
        head["compile_vs_empty" + suffix] = cr
        head["launch_vs_empty_bcc" + suffix] = launch
        judged = label != "cold"  # no launch compiles (the module doc): information only
        target_rows += [
            [f"{label}: compile + load CPU, bee / empty bcc program (best of runs) "
             + ("\u2264 1.5\u00d7" if judged else "(info)"),
             f"{_fmt(num)} / {_fmt(den)} = "
             + (f"{cr:.2f}\u00d7" + (f" {'PASS' if cr <= 1.5 else 'MISS'}" if judged else "")
                if cr else "n/a")],
            [f"{label}: launch \u2192 Recording, bee / Python loading an empty bcc program "
             + ("\u2264 2\u00d7" if judged else "(info)"),
             fmt_spread(launch, 3)
             + (f" {'PASS' if statistics.median(launch) <= 2 else 'MISS'}"
                if launch and judged else "")],
        ]
    imp = ", ".join(f"`{n}` {t:.3f} s" for n, t in res["importtime"])
    med = {t: _med(_series(ms, t, "startup_s", runs))
           for t in ("bee", "bee first", "bee cold", "perf", "bcc", "bee --help",
                     "import bee.cli", "empty bcc")}
    ph = {k: _med(_series(ms, "bee phases", k, runs)) for k in keys}
    ph_cold = _med(_series(ms, "bee phases cold", "compile_load", runs))
    ph_first = _med(_series(ms, "bee phases first", "compile_load", runs))
    accounted = sum(v for k, v in ph.items() if v is not None and k != "detach_close")
    rest = (med["bee"] - accounted - (med["import bee.cli"] or 0)) if med["bee"] else None
    share = (f"{ph['compile_load'] / med['bee'] * 100:.0f} %"
             if med["bee"] and ph["compile_load"] else "n/a")
    md = [
        f"Recording the whole system at {FREQ} Hz with a one-thread workload running; "
        "median [min\u2013max] over the runs. *CPU* = the recorder's CPU by the time it samples. "
        "*warm*: bee's cache folder kept from run to run (unwind tables; the shipped BPF "
        "program); *first*: that folder emptied before each run, so the program bee ships "
        "loads (one program for every option set: every launch on a host where bee never "
        "compiled); *cold*: "
        "the cache emptied and the shipped program turned off, so bcc runs clang (only "
        "when `bpf/*.c` differs from the shipped build; for information, not judged). "
        "*bee --help* and *import bee.cli* (`python -c`) show the fixed cost of the "
        "interpreter and the CLI.",
        "",
        table(["recorder", "launch \u2192 sampling", "CPU by then"], rows),
        "",
        table(["ratio", "median [min\u2013max]"], ratio_rows),
        "",
        "Start-up targets (issue 13 item 5), per case:",
        "",
        table(["target", "measured"], target_rows),
        "",
        "Where bee's start-up goes (in-process, `bench/bee_helper.py phases`):",
        "",
        table(["phase", *LABELS.values()], phase_rows),
        "",
        f"Largest top-level imports (`python -X importtime`, cumulative): {imp}.",
        "",
        f"Analysis: bee takes {_fmt(med['bee'])} from launch to sampling with its cache "
        f"warm, {_fmt(med['bee first'])} at a first launch, "
        f"{_fmt(med['bee cold'])} cold (clang); perf {_fmt(med['perf'])} (to its first sample), "
        f"profile-bpfcc {_fmt(med['bcc'])}, a Python process loading an empty bcc program "
        f"{_fmt(med['empty bcc'])}. Loading bee's shipped program (maps created, programs "
        f"verified by the kernel, no clang) takes {_fmt(ph['compile_load'])} warm"
        f" ({share} of the launch) and {_fmt(ph_first)} at a first launch; "
        f"cold, bcc's clang compile + load takes {_fmt(ph_cold)}. "
        f"Starting the interpreter and importing the CLI {_fmt(med['import bee.cli'])}; "
        f"`import bcc` {_fmt(ph['import_bcc'])}; importing the record stage "
        f"{_fmt(ph['import_bee_record'])}; attaching the cpu-clock events "
        f"{_fmt(ph['attach'])}; "
        + (f"the remaining {_fmt(rest)} is argument parsing, privilege and tracefs checks, "
           "the perf buffer and the process table. " if rest is not None and rest > 0.005
           else "nothing measurable remains (the phases were timed in other processes, so "
           "the sum can exceed the whole by noise). ")
        + "Like perf, bee compiles nothing at a launch: it ships its BPF program compiled, "
        "one program for every option set (switches read at run time, map sizes set when "
        "the maps are created); only a source that differs from the shipped build is "
        "compiled, once per host (the cache is keyed by source, kernel release, CPUs, bcc "
        "and bee versions).",
    ]
    if res["errors"]:
        md += ["", "Failed measurements:", ""] + [f"- {e}" for e in res["errors"]]
    return "\n".join(md), head


def _med(vals: list[Any]) -> float | None:
    v = [float(x) for x in vals if x is not None]
    return statistics.median(v) if v else None


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v * 1000:.1f} ms" if abs(v) < 0.1 else f"{v:.2f} s"

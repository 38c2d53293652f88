"""Measurements that need bee's own Python modules; run with the venv's python.

    bee_helper.py stats FILE                      JSON counts of a recording
    bee_helper.py phases FREQ                     JSON timings of bee record's start-up phases
    bee_helper.py lines DEBUG BUILD_ID CACHE_DIR  addresses on stdin -> addr2line -a -f -i
    bee_helper.py names-cache DEBUG BUILD_ID CACHE_DIR   ... -> addr2line -a -f (names)
    bee_helper.py names-elf DEBUG                 same, from the ELF symbol tables, no cache
    bee_helper.py report-breakdown FILE OUT       JSON: where ``bee report`` spends its time
    bee_helper.py open-timeline HTML RUNS         JSON: browser time to open a timeline page

The symbolizing modes print what ``addr2line -a -f [-i]`` prints (address line, then
function and file:line of each frame, innermost first) so that outputs can be compared,
and a JSON line of in-process timings (``load``: tables ready; ``lookup``: the lookups;
``print``: formatting) on stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any


def _addresses() -> list[int]:
    return [int(tok, 16) for tok in sys.stdin.read().split()]


def stats(path: str) -> dict[str, Any]:
    """Samples, sample keys, unique full (user + kernel) stacks and stack-table size."""
    from bee_contract import codec

    rec = codec.read(Path(path))
    chains = {(s.user_stack, s.kernel_stack) for s in rec.samples}
    return {"samples": rec.total_samples, "keys": len(rec.samples),
            "unique_chains": len(chains), "stacks": len(rec.stacks), "lost": rec.total_lost,
            "lost_kinds": {k: v for k, v in rec.lost.items() if v}}


def phases(freq: int) -> dict[str, Any]:
    """Wall time of each phase of ``bee record``'s start-up, in this process."""
    t0 = time.perf_counter()
    import bcc  # noqa: F401

    t1 = time.perf_counter()
    from bee_record import record  # noqa: F401
    from bee_record.sampler import Sampler, SamplerOptions

    t2 = time.perf_counter()
    sampler = Sampler(SamplerOptions(frequency=freq))
    t3 = time.perf_counter()
    sampler.start()
    t4 = time.perf_counter()
    sampler.stop()
    sampler.close()
    t5 = time.perf_counter()
    out = {"import_bcc": t1 - t0, "import_bee_record": t2 - t1,
           "compile_load": t3 - t2, "attach": t4 - t3, "detach_close": t5 - t4}
    try:  # tear-down work: bee names the sampled kernel addresses from kallsyms at exit
        from bee_record import kallsyms

        t6 = time.perf_counter()
        if hasattr(kallsyms, "kernel_info"):
            kallsyms.kernel_info([0xFFFFFFFF81000000])
        else:
            kallsyms.read_kallsyms()
        out["read_kallsyms"] = time.perf_counter() - t6
    except ImportError:
        pass
    return out


def _print_frames(addrs: list[int], frames: dict[int, Any], out: list[str]) -> None:
    for a in addrs:
        out.append(f"0x{a:016x}")
        fr = frames.get(a) or ()
        if not fr:
            out.append("??\n??:0")
        for f in fr:
            line = f.line if f.line is not None else "?"
            out.append(f"{f.function or '??'}\n{f.file or '??'}:{line}")


def lines(debug: str, build_id: str, cache_dir: str) -> dict[str, float]:
    """Names, file:line and inlined frames through ``DebugInfo``."""
    from bee_report.dwarf.lines import DebugInfo

    addrs = _addresses()
    t0 = time.perf_counter()
    di = DebugInfo.load(Path(debug), build_id, Path(cache_dir))
    if di is None:
        raise SystemExit(f"{debug}: no DWARF")
    t1 = time.perf_counter()
    frames = di.lookup_many(addrs)
    t2 = time.perf_counter()
    out: list[str] = []
    _print_frames(addrs, frames, out)
    sys.stdout.write("\n".join(out) + "\n")
    return {"load": t1 - t0, "lookup": t2 - t1, "print": time.perf_counter() - t2}


def names_cache(debug: str, build_id: str, cache_dir: str) -> dict[str, float]:
    """Outermost function names through ``DebugInfo.function_name`` (cached tables)."""
    from bee_report.dwarf.lines import DebugInfo

    addrs = _addresses()
    t0 = time.perf_counter()
    di = DebugInfo.load(Path(debug), build_id, Path(cache_dir))
    if di is None:
        raise SystemExit(f"{debug}: no DWARF")
    t1 = time.perf_counter()
    names = [di.function_name(a) for a in addrs]
    t2 = time.perf_counter()
    sys.stdout.write("".join(f"0x{a:016x}\n{n or '??'}\n" for a, n in zip(addrs, names,
                                                                          strict=True)))
    return {"load": t1 - t0, "lookup": t2 - t1, "print": time.perf_counter() - t2}


def names_elf(debug: str) -> dict[str, float]:
    """Function names from the ELF symbol tables (``ElfFile.functions().lookup``)."""
    from bee_report.demangle.binutils import demangle
    from bee_report.elf.elffile import ElfFile

    addrs = _addresses()
    t0 = time.perf_counter()
    table = ElfFile.open(debug).functions()
    t1 = time.perf_counter()
    syms = [table.lookup(a) for a in addrs]
    names = [demangle(s.name) if s is not None else "??" for s in syms]
    t2 = time.perf_counter()
    sys.stdout.write("".join(f"0x{a:016x}\n{n}\n" for a, n in zip(addrs, names, strict=True)))
    return {"load": t1 - t0, "lookup": t2 - t1, "print": time.perf_counter() - t2}


def report_breakdown(path: str, out: str) -> dict[str, float]:
    """Run ``bee report PATH --format folded -o OUT`` in-process, timing its main parts.

    Timers wrap ``codec.read`` (decode), ``report.build_profile`` (decode + symbolize),
    ``ElfFile.functions`` (symbol tables read and sorted; counted once per file) and
    ``DebugInfo.load``; what ``main`` spends outside ``build_profile`` is argument parsing,
    filtering and rendering.
    """
    t0 = time.perf_counter()
    from bee.cli import main as bee_main
    from bee_contract import codec
    from bee_report import report
    from bee_report.dwarf import lines as dwarf
    from bee_report.elf import elffile as elf

    t1 = time.perf_counter()
    acc = {"functions": 0.0, "functions_built": 0.0, "dwarf_load": 0.0, "decode": 0.0,
           "profile": 0.0}
    built: set[int] = set()

    def timed(owner: Any, name: str, key: str, wrap_class: bool = False) -> None:
        orig = getattr(owner, name, None)
        if orig is None:
            return
        func = orig.__func__ if wrap_class else orig

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            s = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                acc[key] += time.perf_counter() - s
                if key == "functions" and id(args[0]) not in built:
                    built.add(id(args[0]))
                    acc["functions_built"] += 1

        setattr(owner, name, classmethod(wrapper) if wrap_class else wrapper)

    timed(elf.ElfFile, "functions", "functions")
    timed(dwarf.DebugInfo, "load", "dwarf_load", wrap_class=True)
    timed(codec, "read", "decode")
    timed(report, "build_profile", "profile")
    sys.argv = ["bee", "report", path, "--format", "folded", "-o", out]
    t2 = time.perf_counter()
    with contextlib.suppress(SystemExit):
        bee_main()
    t3 = time.perf_counter()
    return {"import": t1 - t0, "main": t3 - t2, **acc}


def open_timeline(page: str, runs: int) -> dict[str, Any]:
    """Open a `--format timeline` page in headless Chromium `runs` times (fresh tab each).

    Per run, in the browser's own clock (performance.now(), from navigation start):
    ``ready`` when the page's script has drawn the heat map and the flame graph, and
    ``painted`` after the next two animation frames (style, layout and paint done); then
    ``select_ms``, the time to redraw the flame graph for a 10-minute selection.
    """
    import os
    import signal
    import subprocess
    import tempfile
    import urllib.request

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.test_flamegraph_browser import CHROMIUM, FLAGS, DevTools, WebSocket

    out: dict[str, Any] = {"ready": [], "painted": [], "select_ms": []}
    with tempfile.TemporaryDirectory(prefix="bee-bench-chromium-") as profile:
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        try:
            port_file = Path(profile, "DevToolsActivePort")
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("chromium did not start")
                time.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
                target = next(t for t in json.load(reply) if t["type"] == "page")
            cdp = DevTools(WebSocket(target["webSocketDebuggerUrl"], timeout=120))
            cdp.call("Page.enable")
            url = Path(page).resolve().as_uri()
            for _ in range(runs):
                cdp.call("Page.navigate", url="about:blank")
                cdp.event("Page.loadEventFired")
                cdp.events.clear()
                cdp.call("Page.navigate", url=url)
                cdp.event("Page.loadEventFired")
                ready = cdp.eval("+document.body.getAttribute('data-ready-ms')")
                reply = cdp.call("Runtime.evaluate", awaitPromise=True, returnByValue=True,
                                 expression="new Promise(r => requestAnimationFrame(() => "
                                 "requestAnimationFrame(() => r(performance.now()))))")
                out["ready"].append(ready / 1000)
                out["painted"].append(reply["result"]["value"] / 1000)
                out["select_ms"].append(cdp.eval(
                    "(() => { const t = performance.now(); const n = 6000 * 1e9 / D.res_ns;"
                    " timeline.select(Math.floor(D.n / 3), Math.floor(D.n / 3 + n));"
                    " return performance.now() - t; })()"))
            cdp.ws.close()
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            # its helpers may outlive it, writing into the profile folder being removed
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return out


def main(argv: list[str]) -> int:
    """Dispatch on the first argument (see the module docstring)."""
    cmd, args = argv[0], argv[1:]
    if cmd == "stats":
        print(json.dumps(stats(args[0])))
    elif cmd == "phases":
        print(json.dumps(phases(int(args[0]))))
    elif cmd == "lines":
        print(json.dumps(lines(*args)), file=sys.stderr)
    elif cmd == "names-cache":
        print(json.dumps(names_cache(*args)), file=sys.stderr)
    elif cmd == "report-breakdown":
        print(json.dumps(report_breakdown(args[0], args[1])))
    elif cmd == "open-timeline":
        print(json.dumps(open_timeline(args[0], int(args[1]))))
    elif cmd == "names-elf":
        print(json.dumps(names_elf(args[0])), file=sys.stderr)
    else:
        raise SystemExit(f"unknown command {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

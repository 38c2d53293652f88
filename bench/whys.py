"""One-line reasons for missed targets, built from the measurements themselves."""

from __future__ import annotations

import statistics
from typing import Any


def _med(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _s(v: float | None, unit: str = " s", digits: int = 2) -> str:
    return "?" if v is None else f"{v:.{digits}f}{unit}"


def _overhead(res: dict[str, Any], startup: dict[str, Any] | None) -> dict[str, str]:
    ms = res["measurements"]
    out: dict[str, str] = {}
    ksyms = None
    if startup:
        ksyms = _med([m.get("read_kallsyms") for m in startup["measurements"]
                      if m["tool"] == "bee phases"])
    kallsyms = (f"; naming kernel addresses from /proc/kallsyms alone takes {_s(ksyms)}"
                if ksyms else "")
    for freq in sorted({m["freq"] for m in ms}):
        def med(tool: str, key: str, freq: int = freq) -> float | None:
            return _med([m.get(key) for m in ms if m["tool"] == tool and m["freq"] == freq])

        steady = _med([m["cpu_steady"] / m["steady_s"] * 100 for m in ms
                       if m["tool"] == "bee" and m["freq"] == freq and m.get("steady_s")])
        out[f"cpu/{freq}"] = (
            f"bee {_s(med('bee', 'cpu_run'))} after start-up (sampling {_s(steady, ' %', 1)} "
            f"of a CPU + tear-down {_s(med('bee', 'cpu_teardown'))}{kallsyms}) vs perf "
            f"{_s(med('perf', 'cpu_run'))}: bee's is Python work, draining and resolving "
            "map keys every second, then building the file (maps, kernel symbols) at exit; "
            "perf only copies its ring buffer and does a build-id pass")
        out[f"cpu_total/{freq}"] = (
            f"start-up: bee {_s(med('bee', 'cpu_startup'))} CPU, perf "
            f"{_s(med('perf', 'cpu_startup'))} (section 2: bee's start-up, warm, at a "
            "first launch and with a forced compile; these runs use the host's cache)")
    return out


def breakdown_parts(bd: list[dict[str, float]]) -> list[tuple[str, float]]:
    """Median parts of a warm ``bee report`` from ``bee_helper.py report-breakdown`` runs."""
    if not bd:
        return []

    def med(k: str) -> float:
        return statistics.median(b.get(k, 0.0) for b in bd)

    files = med("functions_built")
    parts = [("CLI import", med("import")), ("decode", med("decode")),
             (f"ELF symbol tables ({files:.0f} files)", med("functions")),
             ("DWARF tables", med("dwarf_load")),
             ("symbolize", med("profile") - med("decode") - med("functions")
              - med("dwarf_load")),
             ("argument parsing, filter, render, write", med("main") - med("profile"))]
    return sorted(((n, max(0.0, v)) for n, v in parts), key=lambda p: -p[1])


def _report(res: dict[str, Any]) -> dict[str, str]:
    ms = res["measurements"]
    warm = _med([m["wall"] for m in ms if m["tool"] == "bee folded warm"])
    perf = _med([m["wall"] for m in ms if m["tool"] == "perf report"])
    parts = breakdown_parts(res.get("breakdown") or [])
    detail = ", ".join(f"{n} {v:.2f} s" for n, v in parts[:4])
    return {"report": f"bee {_s(warm)} vs perf {_s(perf)}; bee's largest parts (in-process): "
                      f"{detail or 'not measured'}, plus starting the interpreter"}


def _symbolize(res: dict[str, Any], startup: dict[str, Any] | None) -> dict[str, str]:
    imp = None
    if startup:
        imp = _med([m.get("startup_s") for m in startup["measurements"]
                    if m["tool"] == "import bee.cli"])
    imports = res.get("cli_imports") or []
    detail = ""
    if imports:
        imp = sum(t for _, t in imports)
        detail = " (" + ", ".join(f"{n} {t:.2f} s" for n, t in imports[:3]) + ")"
    out = {}
    for name, b in res["binaries"].items():
        def wall(tool: str, b: dict[str, Any] = b) -> float | None:
            return _med([m["wall"] for m in b["m"] if m["tool"] == tool])

        def look(tool: str, key: str = "lookup", b: dict[str, Any] = b) -> float | None:
            return _med([m.get(key) for m in b["m"] if m["tool"] == tool])

        cli = any(m["tool"] == "bee CLI lines warm" for m in b["m"])
        warm = "bee CLI lines warm" if cli else "bee API lines warm"
        empty = "bee CLI lines empty" if cli else "bee API lines empty"
        out[f"sym_warm/{name}"] = (
            f"{_s(wall(warm))} vs llvm-symbolizer {_s(wall('llvm-symbolizer -i'))}: bee's "
            f"imports alone take {_s(imp)}{detail}; in-process (bee API lines warm) it is "
            f"{_s(wall('bee API lines warm'))}")
        out[f"sym_empty/{name}"] = (
            f"{_s(wall(empty))} vs llvm-symbolizer {_s(wall('llvm-symbolizer -i'))}; "
            f"in-process: SymCache build {_s(look('bee API lines empty', 'load'))}, lookups "
            f"{_s(look('bee API lines empty'))}")
        out[f"names/{name}"] = (
            f"`function_name` for 10k addresses takes {_s(look('bee API names warm'), ' s', 3)} "
            "in Python (bisect + walk to the outermost frame per address)")
    return out


def _size(res: dict[str, Any]) -> dict[str, str]:
    fs = [f for f in res["files"] if f["tool"] == "bee"]
    per = _med([f["bytes"] / max(1, f["unique_chains"]) for f in fs])
    return {"size": f"bee stores {_s(per, ' B', 0)} per unique stack (maps and build-ids "
                    "of every sampled process dominate short recordings)"}


def explain(stored: dict[str, Any]) -> dict[str, str]:
    """Reason strings keyed like :func:`render.targets` expects."""
    out: dict[str, str] = {}
    startup = stored.get("startup", {}).get("result")
    try:
        if "overhead" in stored:
            out.update(_overhead(stored["overhead"]["result"], startup))
        if "report" in stored:
            out.update(_report(stored["report"]["result"]))
        if "symbolize" in stored:
            out.update(_symbolize(stored["symbolize"]["result"], startup))
        if "size" in stored:
            out.update(_size(stored["size"]["result"]))
    except (KeyError, TypeError, ZeroDivisionError, ValueError) as exc:
        out.setdefault("cpu", f"(could not explain: {exc})")
    return out

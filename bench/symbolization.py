"""Section 5: symbolize 10,000 random addresses inside functions of libc and python3.11.

Addresses: a function symbol (FUNC with a size, from the debug file's ``.symtab`` as
listed by ``nm``) chosen at random (fixed seed), then a random offset inside it. Every tool
runs as a whole process with the addresses on stdin and its output written to a file;
tools are interleaved run by run. bee runs through ``bench/bee_helper.py`` (its Python
API: ``bee_report.dwarf.lines.DebugInfo`` and ``bee_report.elf.elffile.ElfFile``), which also
reports its in-process load/lookup times.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common import (
    BEE,
    HELPER,
    VENV_PY,
    BenchError,
    fmt_spread,
    import_times,
    ratios,
    rotated,
    run_timed,
    table,
)

BINARIES = {"libc": Path("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            "python3.11": Path("/usr/bin/python3.11")}
COUNT = 10_000
_BUILD_ID = re.compile(r"Build ID: ([0-9a-f]+)")
_DISCRIMINATOR = re.compile(r" \(discriminator \d+\)$")


def build_id(path: Path) -> str:
    """GNU build-id of ``path`` (``readelf -n``)."""
    m = _BUILD_ID.search(run_timed(["readelf", "-n", path]).stdout)
    if not m:
        raise BenchError(f"{path}: no build-id")
    return m.group(1)


def debug_file(bid: str) -> Path:
    """The separate debug file of a build-id under /usr/lib/debug/.build-id."""
    p = Path("/usr/lib/debug/.build-id") / bid[:2] / f"{bid[2:]}.debug"
    if not p.exists():
        raise BenchError(f"no debug file {p} (install libc6-dbg / python3.11-dbg)")
    return p


def random_addresses(debug: Path, count: int, seed: int) -> list[int]:
    """``count`` addresses, each a random offset inside a random sized function symbol."""
    funcs = []
    for line in run_timed(["nm", "-S", "--defined-only", debug]).stdout.splitlines():
        p = line.split()
        if len(p) >= 4 and p[2] in ("T", "t", "W", "w", "i") and int(p[1], 16) > 0:
            funcs.append((int(p[0], 16), int(p[1], 16)))
    if not funcs:
        raise BenchError(f"{debug}: no function symbols")
    rng = random.Random(seed)
    return [a + rng.randrange(s) for a, s in (rng.choice(funcs) for _ in range(count))]


def _argv(tool: str, binary: Path, debug: Path, bid: str,
          cache: Path) -> tuple[list[str], dict[str, str] | None]:
    """Command line and environment (None: inherited) of ``tool``."""
    helper = [str(VENV_PY), str(HELPER)]
    if tool.startswith("bee CLI"):
        kind = "empty" if "empty" in tool else "warm"
        env = dict(os.environ, XDG_CACHE_HOME=str(cache / f"cli-{kind}"))
        extra = ["--no-inline"] if "names" in tool else []
        return [str(BEE), "symbolize", "--offline", *extra, "-e", str(binary)], env
    argv = {
        "bee API lines empty": [*helper, "lines", str(debug), bid, str(cache / "api-empty")],
        "bee API lines warm": [*helper, "lines", str(debug), bid, str(cache / "api-warm")],
        "addr2line -i": ["addr2line", "-a", "-f", "-i", "-C", "-e", str(binary)],
        "llvm-symbolizer -i": ["llvm-symbolizer", f"--obj={binary}", "--inlining", "-a", "-C",
                               "--output-style=GNU"],
        "bee API names symtab": [*helper, "names-elf", str(debug)],
        "bee API names warm": [*helper, "names-cache", str(debug), bid, str(cache / "api-warm")],
        "addr2line names": ["addr2line", "-a", "-f", "-C", "-e", str(binary)],
        "llvm-symbolizer names": ["llvm-symbolizer", f"--obj={binary}", "--no-inlines", "-a",
                                  "-C", "--output-style=GNU"],
    }[tool]
    return argv, None


def _parse(text: str, with_lines: bool) -> dict[int, list[str]]:
    """addr2line -a output -> address: [function (file:line)] innermost first."""
    out: dict[int, list[str]] = {}
    cur: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("0x"):
            cur = out.setdefault(int(ln, 16), [])
            i += 1
            continue
        if with_lines and i + 1 < len(lines):
            cur.append(f"{ln} {_DISCRIMINATOR.sub('', lines[i + 1])}")
            i += 2
        else:
            cur.append(ln)
            i += 1 + (1 if not with_lines and i + 1 < len(lines)
                      and not lines[i + 1].startswith("0x") else 0)
    return out


def _agreement(a: dict[int, list[str]], b: dict[int, list[str]], outer: bool) -> float:
    keys = a.keys() & b.keys()
    if not keys:
        return 0.0
    if outer:
        same = sum(1 for k in keys if a[k][-1:] and b[k][-1:]
                   and a[k][-1].split(" ")[0] == b[k][-1].split(" ")[0])
    else:
        same = sum(1 for k in keys if a[k] == b[k])
    return same / len(keys)


API_TOOLS = ["bee API lines empty", "bee API lines warm", "bee API names symtab",
             "bee API names warm"]
CLI_TOOLS = ["bee CLI lines empty", "bee CLI lines warm", "bee CLI names warm"]
PEERS = ["addr2line -i", "llvm-symbolizer -i", "addr2line names", "llvm-symbolizer names"]
#: (tool, its output has file:line) compared with addr2line -i
_COMPARED = [("bee CLI lines warm", True), ("bee API lines warm", True),
             ("llvm-symbolizer -i", True), ("bee CLI names warm", False),
             ("bee API names warm", False), ("bee API names symtab", False),
             ("addr2line names", False), ("llvm-symbolizer names", False)]


def has_cli() -> bool:
    """Whether this bee has ``bee symbolize`` with ``--offline``."""
    res = run_timed([BEE, "symbolize", "--help"], check=False)
    return res.returncode == 0 and "--offline" in res.stdout


def run(ctx: dict[str, Any]) -> dict[str, Any]:
    """Measure every tool on both binaries, interleaved over ``ctx['runs']`` runs."""
    tools = (CLI_TOOLS if has_cli() else []) + API_TOOLS + PEERS
    out: dict[str, Any] = {"tools": tools, "binaries": {}, "errors": []}
    work = Path(tempfile.mkdtemp(prefix="sym-", dir=ctx["work"]))
    setups = {}
    for name, binary in BINARIES.items():
        bid = build_id(binary)
        debug = debug_file(bid)
        addrs = random_addresses(debug, COUNT, seed=1)
        stdin = "".join(f"0x{a:x}\n" for a in addrs)
        setups[name] = (binary, debug, bid, stdin)
        out["binaries"][name] = {"path": str(binary), "debug": str(debug),
                                 "debug_bytes": debug.stat().st_size, "m": []}
        for tool in ("bee API lines warm", "bee CLI lines warm"):  # fill warm caches
            if tool in tools:
                argv, env = _argv(tool, binary, debug, bid, work / name)
                run_timed(argv, stdin=stdin, env=env)
    outputs: dict[tuple[str, str], str] = {}
    for r in range(ctx["runs"]):
        for name, (binary, debug, bid, stdin) in setups.items():
            cache = work / name
            for tool in rotated(tools, r):
                for kind in ("api-empty", "cli-empty"):
                    shutil.rmtree(cache / kind, ignore_errors=True)
                dest = work / f"{name}-{tool.replace(' ', '_')}.out"
                argv, env = _argv(tool, binary, debug, bid, cache)
                try:
                    t = run_timed(argv, stdin=stdin, env=env, stdout_path=dest, timeout=300)
                except BenchError as exc:
                    out["errors"].append(f"{name} {tool}: {exc}")
                    ctx["log"](f"  ! {out['errors'][-1]}")
                    continue
                m: dict[str, Any] = {"run": r, "tool": tool, "wall": t.wall, "cpu": t.cpu}
                last = (t.stderr.strip().splitlines() or [""])[-1]
                if tool.startswith("bee API") and last.startswith("{"):
                    m.update(json.loads(last))
                out["binaries"][name]["m"].append(m)
                outputs[(name, tool)] = dest.read_text(errors="replace")
                ctx["log"](f"  run {r} {name:10s} {tool:22s} {t.wall:.3f} s")
    for name in setups:
        ref = _parse(outputs.get((name, "addr2line -i"), ""), True)
        agree: dict[str, tuple[float | None, float]] = {}
        for tool, with_lines in _COMPARED:
            if (name, tool) not in outputs:
                continue
            got = _parse(outputs[(name, tool)], with_lines)
            agree[tool] = (_agreement(got, ref, False) if with_lines else None,
                           _agreement(got, ref, True))
        out["binaries"][name]["agreement"] = agree
    if "bee CLI lines warm" in tools:
        binary, debug, bid, stdin = setups["libc"]
        out["cli_imports"] = cli_imports(binary, debug, bid, work / "libc", stdin)
    shutil.rmtree(work, ignore_errors=True)
    return out


def cli_imports(binary: Path, debug: Path, bid: str, cache: Path,
                stdin: str) -> list[tuple[str, float]]:
    """Top-level imports of a warm ``bee symbolize`` run (``-X importtime``), largest first."""
    argv, env = _argv("bee CLI lines warm", binary, debug, bid, cache)
    return import_times(argv, env, stdin)


def _series(ms: list[dict[str, Any]], tool: str, key: str, runs: int) -> list[Any]:
    by = {m["run"]: m.get(key) for m in ms if m["tool"] == tool}
    return [by.get(r) for r in range(runs)]


def _opt(values: list[Any]) -> str:
    vals = [v for v in values if v is not None]
    return fmt_spread(vals, 3, unit=" s") if vals else "—"


def summarize(res: dict[str, Any], runs: int) -> tuple[str, dict[str, Any]]:
    """Markdown for section 5 and the numbers the targets need."""
    rows, ratio_rows = [], []
    head: dict[str, Any] = {}
    cli = "bee CLI lines empty" in res["tools"]
    lines_e, lines_w = (("bee CLI lines empty", "bee CLI lines warm") if cli
                        else ("bee API lines empty", "bee API lines warm"))
    names_w = "bee CLI names warm" if cli else "bee API names warm"
    pairs = [(lines_e, "llvm-symbolizer -i"), (lines_w, "llvm-symbolizer -i"),
             (lines_e, "addr2line -i"), (lines_w, "addr2line -i"),
             ("bee API lines empty", "llvm-symbolizer -i"),
             ("bee API lines warm", "llvm-symbolizer -i"),
             (names_w, "llvm-symbolizer names"), (names_w, "addr2line names"),
             ("bee API names warm", "llvm-symbolizer names"),
             ("bee API names symtab", "addr2line names")]
    for name, b in res["binaries"].items():
        ms = b["m"]
        for tool in res["tools"]:
            ag = b.get("agreement", {}).get(tool)
            agree = "—" if ag is None else " / ".join(
                "—" if v is None else f"{v * 100:.1f} %" for v in ag)
            rows.append([name, tool, fmt_spread(_series(ms, tool, "wall", runs), 3, unit=" s"),
                         _opt(_series(ms, tool, "load", runs)),
                         _opt(_series(ms, tool, "lookup", runs)), agree])
        for a, p in dict.fromkeys(pairs):
            r = ratios(_series(ms, a, "wall", runs), _series(ms, p, "wall", runs))
            ratio_rows.append([name, f"{a} / {p}", fmt_spread(r, 3)])
            head[f"{name}|{a}|{p}"] = r
        inproc = [None if x is None or y is None else x + y
                  for x, y in zip(_series(ms, "bee API names warm", "load", runs),
                                  _series(ms, "bee API names warm", "lookup", runs), strict=True)]
        head[f"{name}|names-warm-inproc"] = [v for v in inproc if v is not None]
        head[f"{name}|names-warm-inproc/llvm-symbolizer names"] = ratios(
            inproc, _series(ms, "llvm-symbolizer names", "wall", runs))
        ratio_rows.append([name, "bee API names warm (load + lookups, in-process) / "
                           "llvm-symbolizer names", fmt_spread(
                               head[f"{name}|names-warm-inproc/llvm-symbolizer names"], 3)])
    head["lines"] = (lines_e, lines_w)
    md = [
        f"{COUNT:,} random addresses inside function symbols of each binary (seed 1), hex on "
        "stdin, output to a file; *wall* is the whole process (interpreter start, load, "
        "lookups, output), median [min\u2013max]. *bee CLI* = `bee symbolize --offline -e BINARY` "
        "(finds the debug file by build-id; *names* adds `--no-inline`), with "
        "XDG_CACHE_HOME empty or warm. *bee API* = `bench/bee_helper.py` on the debug file "
        "(`DebugInfo.load` + `lookup_many`; *names warm* = `DebugInfo.function_name`; "
        "*names symtab* = `ElfFile.open(debug).functions().lookup`, no cache), whose "
        "in-process *load* and *lookups* times are shown. *agreement* = share of addresses "
        "whose output equals addr2line 2.40 `-i`'s: all frames with file:line "
        "(discriminators ignored) / the outermost function name. llvm-symbolizer names "
        "functions by DW_AT_name (`_Exit`, not `__GI__exit`) and the symbol table path by "
        "ELF symbol (`.lto_priv.0`/`.cold` suffixes, aliases), hence their lower agreement.",
        "",
        table(["binary", "tool", "wall", "bee load", "bee lookups", "agreement (all / outer)"],
              rows),
        "",
        table(["binary", "ratio (wall, per run)", "median [min\u2013max]"], ratio_rows),
    ]
    imports = res.get("cli_imports") or []
    if imports:
        top = ", ".join(f"`{n}` {t:.3f} s" for n, t in imports[:5])
        md += ["", f"Imports of one warm `bee symbolize` run (`python -X importtime`, "
                   f"top level, cumulative): {sum(t for _, t in imports):.2f} s in all; "
                   f"largest {top}."]
    if res["errors"]:
        md += ["", "Failed measurements:", ""] + [f"- {e}" for e in res["errors"]]
    return "\n".join(md), head

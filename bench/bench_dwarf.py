"""Measure bee_report.dwarf.lines against llvm-symbolizer and addr2line (not a test).

For each debug file (default: libc.so.6 and python3.11 from the Debian -dbg packages, found
by build-id) it picks N random addresses inside FUNC symbols and times, each phase in a
fresh Python process so that no in-process cache helps:

* ``llvm-symbolizer --inlines`` and ``addr2line -a -f -i -C`` on the same addresses;
* cold: ``DebugInfo.load`` with an empty cache directory (build + write) and ``lookup_many``;
* warm: ``DebugInfo.load`` from that cache and ``lookup_many``;
* names: ``DebugInfo.load`` from the cache and ``function_name`` for every address.

and the agreement with addr2line (see tests/test_dwarf.py for how it is counted).

    .venv/bin/python -m bench.bench_dwarf [-n 10000] [--no-agreement] [DEBUG_FILE ...]

(run from the repository's root: it reuses the address sampling of tests/test_dwarf.py)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BINARIES = [Path("/usr/lib/x86_64-linux-gnu/libc.so.6"), Path("/usr/bin/python3.11")]


def debug_file_of(binary: Path) -> tuple[Path, str] | None:
    """(debug file, build-id) of an installed binary, via /usr/lib/debug/.build-id."""
    out = subprocess.run(["readelf", "-n", str(binary)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            build_id = line.split()[-1]
            path = Path("/usr/lib/debug/.build-id") / build_id[:2] / f"{build_id[2:]}.debug"
            return (path, build_id) if path.exists() else None
    return None


def phase(kind: str, path: Path, build_id: str, cache: Path, addr_file: Path) -> dict[str, float]:
    """One measured phase, run in this (fresh) process."""
    from bee_report.dwarf.lines import DebugInfo

    addrs = json.loads(addr_file.read_text())
    t0 = time.perf_counter()
    info = DebugInfo.load(path, build_id, cache)
    t1 = time.perf_counter()
    assert info is not None
    if kind == "names":
        for a in addrs:
            info.function_name(a)
    else:
        info.lookup_many(addrs)
    t2 = time.perf_counter()
    return {"load": t1 - t0, "lookup": t2 - t1, "total": t2 - t0}


def timed(cmd: list[str], addrs: list[int]) -> float:
    text = "".join(f"{a:#x}\n" for a in addrs)
    t0 = time.perf_counter()
    subprocess.run(cmd, input=text, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0


def bench(path: Path, build_id: str, count: int, agreement: bool) -> None:
    from tests.test_dwarf import agreement as compare
    from tests.test_dwarf import as_chain, random_addresses

    addrs = random_addresses(path, count, seed=11)
    print(f"\n== {path} ({path.stat().st_size / 1e6:.1f} MB), {len(addrs)} addresses")
    llvm = timed(["llvm-symbolizer", "--inlines", "--demangle", f"--obj={path}"], addrs)
    a2l = timed(["addr2line", "-a", "-f", "-i", "-C", "-e", str(path)], addrs)
    print(f"  llvm-symbolizer {llvm:.3f} s   addr2line {a2l:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        addr_file = Path(tmp) / "addrs.json"
        addr_file.write_text(json.dumps(addrs))
        cache = Path(tmp) / "cache"
        for kind in ("cold", "warm", "names"):
            out = subprocess.run(
                [sys.executable, "-m", "bench.bench_dwarf", "--phase", kind, str(path), build_id,
                 str(cache), str(addr_file)],
                capture_output=True, text=True, check=True, cwd=ROOT,
            ).stdout  # fmt: skip
            r = json.loads(out)
            ratio = r["total"] / llvm
            print(
                f"  bee {kind:5s} load {r['load']:.3f} s + lookups {r['lookup']:.3f} s = "
                f"{r['total']:.3f} s  ({ratio:.2f}x llvm-symbolizer)"
            )
        size = sum(p.stat().st_size for p in (cache / "dwarf").iterdir())
        print(f"  cache entry {size / 1e6:.1f} MB")
    if agreement:
        from bee_report.dwarf.lines import DebugInfo

        info = DebugInfo.load(path, None, None)
        assert info is not None
        got = {a: as_chain(f) for a, f in info.lookup_many(addrs).items()}
        print("  " + compare(path, addrs, got).report("agreement with addr2line").split("\n")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="addresses per file")
    parser.add_argument("--no-agreement", action="store_true", help="skip the addr2line check")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", type=Path, help="debug files (default libc, python)")
    args = parser.parse_args()
    if args.phase:
        path, build_id, cache, addr_file = args.files
        print(json.dumps(phase(args.phase, path, str(build_id), cache, addr_file)))
        return
    targets = [(f, "00") for f in args.files] if args.files else []
    for binary in [] if args.files else BINARIES:
        found = debug_file_of(binary)
        if found is None:
            print(f"skip {binary}: no debug file installed (apt-get install *-dbg)")
        else:
            targets.append(found)
    for path, build_id in targets:
        bench(path, build_id, args.n, not args.no_agreement)


if __name__ == "__main__":
    main()

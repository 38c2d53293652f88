"""Real BPF tests of the .eh_frame unwinder on programs without frame pointers.

Each workload is recorded by bee (default options: the dwarf unwinder) and by
`perf record --call-graph dwarf`, the oracle. Checks: the share of samples whose user
stack reaches a root (main's callers in libc, _start, a thread's clone3/start_thread),
and that the callers of the hot functions agree with perf's.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from bee_contract import codec
from tests.conftest import SRC, run_bee

pytestmark = pytest.mark.bpf

ROOTS = {"_start", "__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main",
         "main", "clone3", "clone", "start_thread"}
PYTHON = "/usr/bin/python3.11"
FREQ = "499"
LOOP = """
import sys
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def run(seconds):
    import time
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        fib(18)
run(float(sys.argv[1]))
"""


Chain = tuple[tuple[str, int], ...]  # (binary basename, file offset), leaf first


def bee_names(out: Path, comm: str | None = None) -> Counter[tuple[str, ...]]:
    """User stacks by name (outermost first, no inlined frames) with their counts (of
    the processes named `comm`, or all)."""
    res = run_bee("report", out, "-f", "folded", "--user-only", "--no-inline",
                  *(("--comm", comm) if comm else ()))
    assert res.returncode == 0, res.stderr
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in res.stdout.splitlines():
        stack, _, count = line.rpartition(" ")
        stacks[tuple(f.split("(")[0] for f in stack.split(";")[1:])] += int(count)
    return stacks


def bee_chains(out: Path, comm: str | None = None) -> Counter[Chain]:
    """User stacks as (binary, file offset) return addresses, leaf first (of the
    processes named `comm`, or all)."""
    rec = codec.read(out)
    chains: Counter[Chain] = Counter()
    for s in rec.samples:
        if s.user_stack < 0 or (comm and rec.processes[s.process].comm != comm):
            continue
        maps = rec.processes[s.process].maps
        chain = []
        for depth, a in enumerate(rec.stacks[s.user_stack]):
            a -= 1 if depth else 0  # perf shows return addresses minus one, as looked up
            m = next((m for m in maps if m.start <= a < m.end), None)
            chain.append((Path(m.path).name, a - m.start + m.offset) if m else ("?", a))
        chains[tuple(chain)] += s.count
    return chains


def perf_record(cmd: list[str], tmp: Path) -> tuple[Counter[tuple[str, ...]], Counter[Chain]]:
    """The workload under `perf record --call-graph dwarf`: stacks by name, and chains."""
    data = tmp / "perf.data"
    subprocess.run(perf_argv(data, cmd), check=True, capture_output=True)
    return perf_stacks(data)


def perf_argv(data: Path, cmd: list[str]) -> list[str]:
    """`perf record --call-graph dwarf` of `cmd` into `data`."""
    if shutil.which("perf") is None:
        pytest.fail("perf is required as the oracle of the unwinder tests")
    return ["perf", "record", "-q", "-F", FREQ, "--call-graph", "dwarf", "-o", str(data),
            "--", *cmd]


def perf_stacks(data: Path) -> tuple[Counter[tuple[str, ...]], Counter[Chain]]:
    """perf's user stacks in `data`: by name (outermost first), and as chains."""
    text = subprocess.run(["perf", "script", "--no-inline", "-F", "ip,sym,dso", "-i",
                           str(data)], check=True, capture_output=True, text=True).stdout
    names: Counter[tuple[str, ...]] = Counter()
    chains: Counter[Chain] = Counter()
    for block in text.split("\n\n"):
        frames, chain = [], []
        for line in block.strip().splitlines():
            ip, _, rest = line.strip().partition(" ")
            sym, _, dso = rest.rpartition(" (")
            if ip.startswith("ffffffff") or not dso:
                continue
            frames.append(sym.split("+0x")[0].strip())
            chain.append((Path(dso.rstrip(")")).name, int(ip, 16)))
        if frames:
            names[tuple(reversed(frames))] += 1
            chains[tuple(chain)] += 1
    return names, chains


def rooted(stacks: Counter[tuple[str, ...]]) -> float:
    """Share of samples one of whose outermost three frames is a root.

    Three, because a stripped executable's _start has no name: its callee
    __libc_start_main and that one's __libc_start_call_main are named in libc.
    """
    total = sum(stacks.values())
    good = sum(n for s, n in stacks.items() if "[truncated]" not in s and ROOTS & set(s[:3]))
    return good / max(total, 1)


def record(cmd: list[str], tmp: Path, *extra: str) -> Path:
    out = tmp / "w.bee"
    res = run_bee("record", "-q", "-F", FREQ, "-o", out, *extra, "--", *cmd)
    assert res.returncode == 0, res.stderr
    return out


#: Outermost frames of a caller chain compared on their own (see check_against_perf).
ROOT_SIDE = 8
#: Innermost frames (the leaf and its nearest callers) compared when whole chains are not.
LEAF_SIDE = 4


def check_against_perf(cmd: list[str], tmp: Path, min_rooted: float,
                       whole_chains: bool = True, same_run: bool = False
                       ) -> Counter[tuple[str, ...]]:
    """Record with bee and perf: completeness, and the callers of perf's common stacks.

    Callers are compared by address (binary, file offset of each return address), not
    by name, so that the two symbolizers' naming differences do not matter: every caller
    chain (a stack without its leaf) that perf saw in >= 4 % (and >= 8) of its samples
    must be among bee's, and so must every such chain cut to its outermost ROOT_SIDE frames
    (there is always one of these). With `whole_chains` False, only the innermost
    LEAF_SIDE frames of perf's common stacks are compared (the leaf and its callers).
    With `same_run`, bee records `perf record -- CMD`, so that both record one run of a
    workload whose stacks differ from run to run.
    """
    if same_run:
        # bee records perf recording the workload: both see the very same run
        data = tmp / "perf.data"
        out = record(perf_argv(data, cmd), tmp)
        comm = Path(cmd[0]).name
        bee, mine = bee_names(out, comm), bee_chains(out, comm)
        perf, theirs = perf_stacks(data)
    else:
        out = record(cmd, tmp)
        bee, mine = bee_names(out), bee_chains(out)
        perf, theirs = perf_record(cmd, tmp)
    assert rooted(perf) >= min_rooted, f"perf itself: {rooted(perf):.3f}"
    assert rooted(bee) >= min_rooted, f"bee: {rooted(bee):.3f} (perf {rooted(perf):.3f})"
    total = sum(theirs.values())
    # whole caller chains, and their outermost ROOT_SIDE frames: a workload whose stacks
    # vary at the leaf end (sort's merges) may have no whole chain in 4 % of the samples,
    # but always has common root-side chains
    cuts: tuple[slice, ...] = ((slice(1, None), slice(-ROOT_SIDE, None)) if whole_chains
                               else (slice(0, LEAF_SIDE),))
    for cut in cuts:
        my_callers = {c[cut] for c in mine}
        callers: Counter[Chain] = Counter()
        for chain, n in theirs.items():
            callers[chain[cut]] += n
        common = [c for c, n in callers.items() if n >= max(0.04 * total, 8) and len(c) > 2]
        assert common or cut == slice(1, None), "perf saw no common caller chain"
        missing = [c for c in common if c not in my_callers]
        assert not missing, (cut, missing[:2], sorted(my_callers, key=len)[-2:])
    return bee


def test_python311_reaches_main_like_perf(tmp_path: Path) -> None:
    # GIVEN Debian's python3.11 (no frame pointers) running a recursive loop
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    # WHEN recorded by bee with default options and by perf --call-graph dwarf
    # THEN >= 95 % of bee's samples reach a root, and the evaluator's callers agree
    check_against_perf([PYTHON, str(script), "2"], tmp_path, 0.95)


def test_python311_at_999_hz_loses_nothing(tmp_path: Path) -> None:
    # GIVEN python3.11 at 999 Hz with default options
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    out = tmp_path / "p.bee"
    res = run_bee("record", "-q", "-F", "999", "-o", out, "--", PYTHON, str(script), "3")
    assert res.returncode == 0, res.stderr
    rec = codec.read(out)
    # THEN nothing is lost and the file says which unwinder made it
    assert rec.total_lost == 0, rec.lost
    assert rec.total_samples > 500  # (the CPU may be shared with other work)
    assert rec.header.unwinder == "dwarf"


def test_xz_reaches_main_like_perf(tmp_path: Path) -> None:
    # GIVEN xz -9 compressing a few MB of compressible data
    data = tmp_path / "data.txt"
    data.write_bytes(b"".join(b"line %d of some text %d\n" % (i, i * 7919 % 1000)
                              for i in range(150000)))
    check_against_perf(["xz", "-9", "-T1", "-k", "-f", str(data)], tmp_path, 0.95)


def test_sort_threads_reach_roots_like_perf(tmp_path: Path) -> None:
    # GIVEN sort --parallel=2 on a generated file
    data = tmp_path / "lines.txt"
    data.write_text("".join(f"{(i * 2654435761) % 1000003:07d} row {i}\n"
                            for i in range(600000)))
    cmd = ["sort", "--parallel=2", "-S", "200M", "-o", str(tmp_path / "sorted"), str(data)]
    # sort splits its work between its threads and the main thread by timing, so its
    # stacks differ from run to run: one run recorded by both, and the hot functions'
    # nearest callers compared
    check_against_perf(cmd, tmp_path, 0.90, whole_chains=False, same_run=True)


def test_cxx_qsort_callback_and_recursion(build_c: Callable[..., Path], tmp_path: Path) -> None:
    # GIVEN a g++ -O2 program without frame pointers: qsort -> callback, deep recursion
    prog = tmp_path / "unwind_work"
    subprocess.run(["g++", "-O2", "-fomit-frame-pointer", "-o", str(prog),
                    str(SRC / "unwind_work.cc")], check=True)
    bee = check_against_perf([str(prog), "2"], tmp_path, 0.95)
    # THEN the 60 levels of recursion are all there
    deepest = max((s.count("recurse") for s in bee), default=0)
    assert deepest >= 61, deepest


def test_signal_handler_continues_into_interrupted_code(tmp_path: Path) -> None:
    # GIVEN a SIGPROF handler burning CPU, -O2 without frame pointers
    prog = tmp_path / "unwind_signal"
    subprocess.run(["gcc", "-O2", "-fomit-frame-pointer", "-o", str(prog),
                    str(SRC / "unwind_signal.c")], check=True)
    bee = bee_names(record([str(prog), "2"], tmp_path))
    # THEN the handler's stacks pass __restore_rt into the interrupted code and main
    in_handler = {s: n for s, n in bee.items() if s and s[-1] == "in_handler"}
    total = sum(in_handler.values())
    assert total > 50
    through = sum(n for s, n in in_handler.items() if "__restore_rt" in s and s[0] in ROOTS
                  and "main" in s)
    assert through / total >= 0.95, in_handler


def test_dlopened_library_is_unwound(tmp_path: Path) -> None:
    # GIVEN a program that dlopen()s a library (both -O2, no frame pointers)
    lib = tmp_path / "libhot.so"
    prog = tmp_path / "unwind_dlopen"
    subprocess.run(["gcc", "-O2", "-fomit-frame-pointer", "-shared", "-fPIC", "-o", str(lib),
                    str(SRC / "unwind_dlopen_lib.c")], check=True)
    subprocess.run(["gcc", "-O2", "-fomit-frame-pointer", "-o", str(prog),
                    str(SRC / "unwind_dlopen.c")], check=True)
    bee = bee_names(record([str(prog), str(lib), "2"], tmp_path))
    # THEN samples in the library's spin reach main through hot_loop and call_plugin
    spin = {s: n for s, n in bee.items() if s and s[-1] == "spin"}
    total = sum(spin.values())
    assert total > 100
    good = sum(n for s, n in spin.items() if s[0] in ROOTS and "call_plugin" in s
               and "hot_loop" in s)
    assert good / total >= 0.95, spin


def test_fp_unwinder_is_still_available(tmp_path: Path) -> None:
    # GIVEN the C++ workload recorded with --unwind fp
    prog = tmp_path / "unwind_work"
    subprocess.run(["g++", "-O2", "-o", str(prog), str(SRC / "unwind_work.cc")], check=True)
    out = record([str(prog), "1"], tmp_path, "--unwind", "fp")
    # THEN the header says so and bee info prints it
    assert codec.read(out).header.unwinder == "fp"
    assert "unwinder:   fp (frame pointers)" in run_bee("info", out).stdout


def test_bee_builds_no_tables_for_its_own_process(tmp_path: Path) -> None:
    import os
    import sys

    from bee_contract.buildid import build_id_of_path

    # GIVEN a host whose unwind-table cache is empty, and a busy Python process on it
    env = dict(os.environ, BEE_RECORD_CACHE_DIR=str(tmp_path / "cache"))
    busy = subprocess.Popen([PYTHON, "-c", "while True: pass"])
    try:
        # WHEN the whole system is recorded for a second
        out = tmp_path / "all.bee"
        bee = subprocess.Popen([sys.executable, "-m", "bee", "record", "-q", "-d", "1", "-o",
                                str(out)], env=env, stderr=subprocess.PIPE, text=True)
        _, err = bee.communicate(timeout=120)
    finally:
        busy.kill()
        busy.wait()
    assert bee.returncode == 0, err
    rec = codec.read(out)
    me = [i for i, p in enumerate(rec.processes) if p.pid == bee.pid]
    # THEN bee sampled itself, and python3.11's table was built for the busy process,
    # but none for what only bee maps (bcc's library and its LLVM)
    assert me and any(s.process in me for s in rec.samples)
    tables = {p.name.split(".")[0] for p in (tmp_path / "cache" / "unwind").iterdir()}
    assert build_id_of_path(PYTHON) in tables
    libbcc = next(b.path for b in rec.binaries if "/libbcc.so" in b.path)
    assert build_id_of_path(libbcc) not in tables, libbcc

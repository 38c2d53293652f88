"""Write a synthetic system-wide `--rotate` series for the timeline benchmark.

    synth_series.py OUTDIR [SECONDS] [FREQ] [CPUS] [FILE_SECONDS]

Defaults: one hour at 999 Hz on 2 CPUs, one file per minute, 100 ms time buckets, as
`bee record -a -F 999 --rotate 60` would write on a busy 2-CPU host: 120 threads in 30
processes, 2000 distinct stacks (depth 6 to 30, a third with kernel frames) drawn with a
Zipf-like skew, load varying in waves with a spike every 30 s. Deterministic (seeded).
Prints one JSON line: files, samples, sample rows. Run with the venv's python.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

from bee_contract import codec
from bee_contract.recording import (
    NO_STACK,
    Binary,
    Header,
    KernelInfo,
    KernelSymbol,
    Mapping,
    Process,
    Recording,
    Sample,
)

START_NS = 1_764_504_000_000_000_000
RES_NS = 100_000_000
BASE = 0x555555554000
KBASE = 0xFFFFFFFF81000000


def _stacks(rng: random.Random, n: int) -> list[tuple[tuple[int, ...], tuple[int, ...] | None]]:
    """Distinct (user, kernel) address stacks, leaf first, sharing call-tree prefixes."""
    out: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = []
    roots = [BASE + 0x1000 + 0x40 * i for i in range(8)]
    while len(out) < n:
        depth = rng.randint(6, 30)
        path = [rng.choice(roots)]
        for d in range(1, depth):
            fan = 3 if d < 4 else 12
            path.append(BASE + 0x1000 + (hash((path[-1], rng.randrange(fan))) % 0x40000) * 4)
        kernel = None
        if rng.random() < 0.35:
            depth = rng.randint(4, 14)
            kernel = tuple(KBASE + 0x100 * rng.randrange(300) + 8 for _ in range(depth))
        out.append((tuple(reversed(path)), kernel))
    return out


def main(argv: list[str]) -> int:
    """Write the series and print what it holds."""
    outdir = Path(argv[0])
    seconds = int(argv[1]) if len(argv) > 1 else 3600
    freq = int(argv[2]) if len(argv) > 2 else 999
    cpus = int(argv[3]) if len(argv) > 3 else 2
    per_file = int(argv[4]) if len(argv) > 4 else 60
    outdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(12)
    pool = _stacks(rng, 2000)
    threads = []  # (process index, tid, stack choices, cumulative weights)
    procs = []
    for p in range(30):
        pid = 1000 + p * 50
        procs.append(Process(pid=pid, generation=0, ns_pid=pid, ppid=1, comm=f"svc{p}",
                             exe="/usr/bin/synthapp", cmdline=("/usr/bin/synthapp", str(p)),
                             maps=(Mapping(BASE, BASE + 0x200000, 0, 0x803, 77,
                                           "/usr/bin/synthapp", 0),)))
        for t in range(rng.randint(1, 7)):
            mine = rng.sample(range(len(pool)), rng.randint(10, 40))
            weights = [1.0 / (k + 1) ** 1.1 for k in range(len(mine))]
            threads.append((p, pid + t, mine, weights))
    thread_w = [1.0 / (k + 1) ** 0.8 for k in range(len(threads))]
    symbols = tuple(KernelSymbol(KBASE + 0x100 * i, f"kfunc_{i}", "") for i in range(301))
    binaries = (Binary("/usr/bin/synthapp", "ab" * 20, 2 << 20),)
    files = samples_total = rows_total = 0
    per_bucket = freq * cpus * RES_NS / 1e9
    buckets_per_file = per_file * 1_000_000_000 // RES_NS
    for f in range(-(-seconds // per_file)):
        stack_index: dict[tuple[int, ...], int] = {}
        rows: dict[tuple[int, int, int, int, int, int], int] = {}
        first = f * buckets_per_file
        last = min(seconds * 1_000_000_000 // RES_NS, first + buckets_per_file)
        for b in range(first, last):
            at = b * RES_NS / 1e9
            load = 0.6 + 0.3 * math.sin(2 * math.pi * at / 300) + (0.4 if at % 30 < 1 else 0)
            n = int(per_bucket * min(1.0, load))
            for ti in rng.choices(range(len(threads)), thread_w, k=n):
                p, tid, mine, weights = threads[ti]
                user, kernel = pool[rng.choices(mine, weights)[0]]
                u = stack_index.setdefault(user, len(stack_index))
                k = NO_STACK if kernel is None else stack_index.setdefault(kernel,
                                                                          len(stack_index))
                key = (p, tid, tid % cpus, u, k, b - first)
                rows[key] = rows.get(key, 0) + 1
        stacks = tuple(stack_index)
        used = sorted({k[0] for k in rows})
        remap = {old: new for new, old in enumerate(used)}
        samples = tuple(Sample(process=remap[p], tid=tid, cpu=cpu, comm=procs[p].comm,
                               user_stack=u, kernel_stack=k, count=c, weight=c, bucket=b)
                        for (p, tid, cpu, u, k, b), c in sorted(rows.items()))
        header = Header(
            host="synth", kernel_release="6.1.0", arch="x86_64",
            start_time_ns=START_NS + first * RES_NS, duration_ns=(last - first) * RES_NS,
            frequency_hz=freq, mode="cpu", weight_unit="samples", events=("cpu-clock",),
            target="system", bee_version="0.1.0", sequence=f + 1, time_resolution_ns=RES_NS)
        rec = Recording(header=header, binaries=binaries,
                        processes=tuple(procs[i] for i in used), stacks=stacks,
                        samples=samples, kernel=KernelInfo("6.1.0", None, symbols))
        codec.write(rec, outdir / f"series.{f + 1:04d}.bee")
        files += 1
        samples_total += rec.total_samples
        rows_total += len(samples)
    print(json.dumps({"files": files, "samples": samples_total, "rows": rows_total,
                      "seconds": seconds, "freq": freq, "cpus": cpus}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

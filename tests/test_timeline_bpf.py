"""When did it burn: time buckets recorded on real BPF, read back with --from/--to.

A program works 2 s in phase_one and then 2 s in phase_two (burning CPU, napping, or
both); windows inside each phase must show only that phase, and a 0.2 s window must hold
0.2 s worth of samples (100 ms buckets).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bee_contract import codec
from tests.conftest import run_bee
from tests.test_record_bpf import folded_lines

pytestmark = [pytest.mark.bpf]

FREQ = 199


def _phases(out: Path, window: tuple[str, ...]) -> dict[str, int]:
    rep = run_bee("report", out, "-f", "folded", "--comm", "phases", *window)
    assert rep.returncode == 0, rep.stderr
    folded = folded_lines(rep.stdout)
    return {p: sum(v for k, v in folded.items() if f";{p};" in k)
            for p in ("phase_one", "phase_two")}


@pytest.mark.parametrize(("mode", "work", "per_second"), [
    ("cpu", "spin", FREQ),  # samples per second
    ("offcpu", "nap", 1e9),  # nanoseconds blocked per second
    ("wall", "mixed", 1e9),  # nanoseconds on and off CPU per second
])
def test_windows_show_only_their_phase(build_c: Callable[..., Path], tmp_path: Path,
                                       mode: str, work: str, per_second: float) -> None:
    # GIVEN a program that works 2 s in phase_one, then 2 s in phase_two
    prog = build_c("phases.c")
    out = tmp_path / f"{mode}.bee"
    # WHEN recorded with the default 100 ms time buckets
    rec = run_bee("record", "-q", "--mode", mode, "-F", str(FREQ), "-o", out, "--",
                  prog, work, "2")
    assert rec.returncode == 0, rec.stderr
    assert codec.read(out).header.time_resolution_ns == 100_000_000
    # THEN a window inside the first phase holds only phase_one, one in the second only
    # phase_two, and the whole recording both
    first = _phases(out, ("--from", "0.3", "--to", "1.6"))
    second = _phases(out, ("--from", "2.6", "--to", "3.8"))
    assert first["phase_one"] > 0 and first["phase_two"] == 0, first
    assert second["phase_two"] > 0 and second["phase_one"] == 0, second
    whole = _phases(out, ())
    assert whole["phase_one"] > first["phase_one"] and whole["phase_two"] > second["phase_two"]
    # AND a 0.2 s window holds 0.2 s worth of samples (one thread, busy all the time). On
    # CPU, "worth" is the rate the program ran at around it (it gets less than a whole CPU
    # when the machine is busy); off-CPU and wall time add up to wall time regardless.
    if mode == "cpu":
        per_second = first["phase_one"] / 1.3
    short = sum(_phases(out, ("--from", "1.0", "--to", "1.2")).values())
    assert 0.6 * 0.2 * per_second < short < 1.4 * 0.2 * per_second, (short, per_second)
    if mode == "cpu":  # never more than the sampling frequency allows
        assert short <= 1.1 * 0.2 * FREQ


def test_a_rotated_series_is_one_timeline(build_c: Callable[..., Path], tmp_path: Path) -> None:
    # GIVEN the two-phase program recorded as a series of 1.3 s files (not a whole number
    # of 100 ms buckets)
    prog = build_c("phases.c")
    out = tmp_path / "rot.bee"
    rec = run_bee("record", "-q", "-F", str(FREQ), "--rotate", "1.3", "-o", out, "--",
                  prog, "spin", "2")
    assert rec.returncode == 0, rec.stderr
    files = sorted(tmp_path.glob("rot.*.bee"))
    assert len(files) >= 3, files
    # THEN every file starts on a bucket boundary of the first one
    starts = [codec.read(f).header.start_time_ns for f in files]
    assert all((s - starts[0]) % 100_000_000 == 0 for s in starts)
    # AND windows count from the series' start, across files
    def phases(*window: str) -> dict[str, int]:
        rep = run_bee("report", *files, "-f", "folded", "--comm", "phases", *window)
        assert rep.returncode == 0, rep.stderr
        folded = folded_lines(rep.stdout)
        return {p: sum(v for k, v in folded.items() if f";{p};" in k)
                for p in ("phase_one", "phase_two")}
    first, second = phases("--from", "0.3", "--to", "1.6"), phases("--from", "2.6", "--to", "3.8")
    assert first["phase_one"] > 0 and first["phase_two"] == 0, first
    assert second["phase_two"] > 0 and second["phase_one"] == 0, second
    # AND a window across the first rotation holds its share of samples, none twice: the
    # rate of the 1.3 s window around it (the program may get less than a whole CPU)
    across = sum(phases("--from", "1.0", "--to", "1.6").values())
    rate = first["phase_one"] / 1.3
    assert 0.6 * 0.6 * rate < across < 1.4 * 0.6 * rate, (across, rate)
    assert across <= 1.1 * 0.6 * FREQ

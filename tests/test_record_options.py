"""`bee record` option values are checked before anything starts (no BPF needed)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bee_record.record import clamp_frequency


@pytest.mark.parametrize(("args", "line"), [
    (("-d", "-1"), "--duration -1: out of range (0.01 to 31622400)"),
    (("-d", "0"), "--duration 0: out of range (0.01 to 31622400)"),
    (("--rotate", "-1"), "--rotate -1: out of range (0.1 to 31622400)"),
    (("--stack-storage-size", "-1"), "--stack-storage-size -1: out of range (0 to 262144)"),
    (("--drain-interval", "0"), "--drain-interval 0: out of range (0.01 to 3600)"),
    (("-F", "0"), "--frequency 0: out of range (1 to 100000)"),
    (("-F", "1000000"), "--frequency 1000000: out of range (1 to 100000)"),
    (("--counts-size", "0"), "--counts-size 0: out of range (1 to 4194304)"),
    (("--mode", "offcpu", "--min-block", "10", "--max-block", "5"),
     "--max-block 5: less than --min-block 10"),
])
def test_nonsense_values_are_one_line(args: tuple[str, ...], line: str, tmp_path: Path,
                                      cli: Callable[..., Any]) -> None:
    # WHEN bee record gets a value out of range THEN one line names the option and range
    result = cli("record", *args, "-o", tmp_path / "x.bee")
    assert result.exit_code == 1
    assert result.stderr == f"bee: {line}\n"
    assert not (tmp_path / "x.bee").exists()


def test_frequency_is_clamped_to_the_kernel_limit(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    limit = tmp_path / "perf_event_max_sample_rate"
    limit.write_text("25000\n")
    assert clamp_frequency(99, str(limit)) == 99
    assert capsys.readouterr().err == ""
    assert clamp_frequency(40000, str(limit)) == 25000
    assert capsys.readouterr().err == (
        "bee: warning: -F 40000 is above the kernel's limit "
        "(kernel.perf_event_max_sample_rate = 25000); recording at 25000 Hz\n")
    assert clamp_frequency(40000, str(tmp_path / "absent")) == 40000


def test_rotate_into_a_fifo_is_refused(tmp_path: Path, cli: Callable[..., Any]) -> None:
    # a series would be FIFO.0001, ...: refused before anything starts
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = cli("record", "--rotate", "5", "-d", "1", "-o", fifo)
    assert result.exit_code == 1
    assert result.stderr == f"bee: {fifo}: --rotate writes a series of files; give a file name\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]

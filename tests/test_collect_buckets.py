"""Time buckets on the record side, without BPF: the collector places the kernel's buckets
(counted from the sampler's start) in each file's own span."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bee_contract.recording import NO_STACK, Header
from bee_record.collect import Collector
from bee_record.procs import ProcessTable
from bee_record.sampler import RawCount

RES = 100_000_000


def _raw(bucket: int, count: int = 1) -> RawCount:
    return RawCount(pid=os.getpid(), tid=os.getpid(), cpu=0, generation=0, event=0,
                    comm="pytest", user_stack=NO_STACK, kernel_stack=(0xFFFFFFFF81000010,),
                    python_stack=NO_STACK, counts=[(bucket, count, count)])


def _header(duration_ns: int) -> Header:
    return Header(host="h", kernel_release="r", arch="x86_64", start_time_ns=10**18,
                  duration_ns=duration_ns, frequency_hz=99, mode="cpu", weight_unit="samples",
                  events=("cpu-clock",), target="system", bee_version="0",
                  time_resolution_ns=RES)


def test_buckets_count_from_the_file_start_and_stay_in_its_span() -> None:
    # GIVEN counts drained in kernel buckets 8 .. 30, for a file that starts at bucket 10
    # and lasts 1.5 s (its buckets 0 .. 14)
    collector = Collector(ProcessTable())
    for bucket, count in ((8, 1), (9, 2), (12, 3), (12, 4), (24, 5), (30, 6)):
        collector.add(_raw(bucket, count))
    # WHEN the file is built
    rec = collector.build(_header(1_500_000_000), {}, first_bucket=10)
    # THEN buckets are relative to its start; counts before it join its first bucket and
    # after it its last (a drain just after a rotation or the end), summed per row
    assert [(s.bucket, s.count) for s in rec.samples] == [(0, 3), (2, 7), (14, 11)]
    assert rec.total_samples == 21


def test_one_row_per_key_and_bucket() -> None:
    collector = Collector(ProcessTable())
    for bucket in (0, 1, 1, 3):
        collector.add(_raw(bucket))
    rec = collector.build(_header(1_000_000_000), {})
    assert [(s.bucket, s.count) for s in rec.samples] == [(0, 1), (1, 2), (3, 1)]
    assert len({(s.user_stack, s.kernel_stack) for s in rec.samples}) == 1


@pytest.mark.parametrize("ms", ["5", "10001"])
def test_time_resolution_out_of_range_is_one_line(cli: Callable[..., Any], tmp_path: Path,
                                                  ms: str) -> None:
    # refused before any BPF is loaded
    result = cli("record", "--time-resolution", ms, "-d", "1", "-o", tmp_path / "x.bee")
    assert result.exit_code != 0
    assert result.stderr == f"bee: --time-resolution {ms}: out of range (10 to 10000)\n"
    assert not (tmp_path / "x.bee").exists()

"""JIT code addresses reused over time: perf maps read incrementally while recording,
each entry kept with the time buckets it named, and the report picking per bucket."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bee_contract import codec
from bee_contract.errors import RecordingFormatError
from bee_contract.recording import ALL_BUCKETS, NO_STACK, Header, JitSymbol, Sample
from bee_record import collect, perfmap
from bee_record.collect import Collector
from bee_record.perfmap import PerfMap
from bee_record.procs import ProcessTable
from bee_record.sampler import RawCount
from bee_report.jit import JitIndex
from formats.make_sample import sample_recording
from tests.conftest import run_bee
from tests.test_codec import _body, _write_body

CODE = 0x7F0000001000


def _names(perf_map: PerfMap, *addresses: int) -> list[str | None]:
    found = [perf_map.lookup(a) for a in addresses]
    return [e.name if e is not None else None for e in found]


def test_later_lines_supersede_earlier_ones_over_their_range(tmp_path: Path) -> None:
    # GIVEN a perf map whose later lines cover parts of earlier ones
    path = tmp_path / "perf-1.map"
    path.write_text("1000 100 outer\n1040 10 inner\n")
    perf_map = PerfMap((str(path),))
    # WHEN read THEN each address is named by the latest line covering it
    assert perf_map.update()
    assert _names(perf_map, 0x1000, 0x1040, 0x104F, 0x1050, 0x10FF, 0x1100) == [
        "outer", "inner", "inner", "outer", "outer", None]
    # AND lines appended later (a half-written one waits for its end) paint over them
    with path.open("a") as f:
        f.write("1000 60 again\n10f0 1")
    perf_map.update()
    assert _names(perf_map, 0x1000, 0x1040, 0x105F, 0x1060, 0x10F0) == [
        "again", "again", "again", "outer", "outer"]
    with path.open("a") as f:
        f.write("0 tail\nnot a line\n-5 3 negative\n")
    perf_map.update()
    assert _names(perf_map, 0x10F0, 0x10F1, 0x1100) == ["tail", "tail", None]
    assert perf_map.lines == 6


def test_a_replaced_or_truncated_map_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "perf-1.map"
    path.write_text("1000 10 old\n")
    perf_map = PerfMap((str(path),))
    perf_map.update()
    # GIVEN the file replaced by a shorter one (a new process with the recycled pid)
    (tmp_path / "new").write_text("2000 10 new\n")
    (tmp_path / "new").rename(path)
    # WHEN read again THEN only the new file's lines count
    perf_map.update()
    assert _names(perf_map, 0x1000, 0x2000) == [None, "new"]


def test_reading_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "perf-1.map"
    path.write_text("".join(f"{0x1000 + 16 * i:x} 10 f{i}\n" for i in range(1000)))
    perf_map = PerfMap((str(path),), max_bytes=100)
    perf_map.update()
    assert perf_map.offset == 100 and perf_map.lines < 10


def test_a_sample_before_a_line_was_written_is_named_by_the_line_it_ran_under(
    tmp_path: Path,
) -> None:
    # GIVEN a perf map read in buckets 2, 5 and 8, where a line replaces another between
    # the reads of buckets 5 and 8
    path = tmp_path / "perf-1.map"
    path.write_text("1000 10 first\n")
    perf_map = PerfMap((str(path),))
    perf_map.update(2)
    with path.open("a") as f:
        f.write("1000 10 second\n")
    perf_map.update(5)  # read in bucket 5: written after bucket 2
    with path.open("a") as f:
        f.write("1008 10 third\n")
    perf_map.update(8)  # written after bucket 5
    # WHEN samples of several buckets are named THEN by the line they ran under; in the
    # bucket of the read before a line appeared, either may be right: the newer one names
    names = [getattr(perf_map.lookup_at(0x1008, b), "name", None) for b in (1, 2, 3, 5, 6, 9)]
    assert names == ["first", "second", "second", "third", "third", "third"]
    assert getattr(perf_map.lookup_at(0x1004, 1), "name", None) == "first"
    # AND once no sample can be older than bucket 5, what was painted over is forgotten
    perf_map.forget(5)
    assert getattr(perf_map.lookup_at(0x1008, 1), "name", None) == "third"


def _raw(address: int, bucket: int, count: int = 1) -> RawCount:
    return RawCount(pid=40, tid=40, cpu=0, generation=0, event=0, comm="node",
                    user_stack=(address, 0x55D0C0A00010), kernel_stack=-1, python_stack=NO_STACK,
                    counts=[(bucket, count, count)])


def test_each_drain_names_its_samples_by_the_entry_current_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a process with a file mapping and an anonymous one (JIT code), and its perf map
    proc = tmp_path / "proc" / "40"
    proc.mkdir(parents=True)
    (proc / "maps").write_text(
        "55d0c0a00000-55d0c0a01000 r-xp 00001000 08:01 1234 /usr/bin/true\n"
        f"{CODE:x}-{CODE + 0x1000:x} rwxp 00000000 00:00 0 \n")
    (proc / "status").write_text("PPid:\t1\nNSpid:\t40\n")
    perf_map = tmp_path / "perf-40.map"
    monkeypatch.setattr(collect, "perf_map_paths", lambda pid, ns_pid: (str(perf_map),))
    collector = Collector(ProcessTable(proc=str(tmp_path / "proc")))
    # WHEN code at one address is replaced between drains
    perf_map.write_text(f"{CODE:x} 20 first\n")
    for bucket in (3, 4, 5):
        collector.add(_raw(CODE + 4, bucket))
    collector.end_drain()
    with perf_map.open("a") as f:
        f.write(f"{CODE:x} 30 second\n{CODE + 0x100:x} 10 unused\n")
    for bucket in (8, 9):
        collector.add(_raw(CODE + 4, bucket, 2))
    collector.end_drain()
    rec = collector.build(_header(), {}, first_bucket=2)
    # THEN both entries are kept, each with the buckets (counted from the file's start)
    # of the samples it named; the entry that named no sample is left out
    (process,) = rec.processes
    assert process.jit == (JitSymbol(CODE, 0x20, "first", 1, 3),
                           JitSymbol(CODE, 0x30, "second", 6, 7))
    assert sorted((s.bucket, s.count) for s in rec.samples) == [(1, 1), (2, 1), (3, 1),
                                                                 (6, 2), (7, 2)]


def _header() -> Header:
    return dataclasses.replace(sample_recording().header, duration_ns=1_000_000_000,
                               time_resolution_ns=100_000_000)


@pytest.mark.parametrize(("bucket", "expect"), [
    (0, "a"), (2, "a"), (3, "b"), (5, "b"),  # in a range: the entry current then
    (6, "b"),  # between ranges: the one current most recently before
    (7, "c"), (9, "c"),  # the later entry at the same address
])
def test_report_picks_the_entry_of_the_sample_bucket(bucket: int, expect: str) -> None:
    index = JitIndex([JitSymbol(CODE, 16, "a", 0, 2), JitSymbol(CODE, 16, "b", 3, 5),
                      JitSymbol(CODE, 16, "c", 7, 9)])
    found = index.lookup(CODE + 8, bucket)
    assert found is not None and found.name == expect


def test_before_any_range_the_soonest_entry_names_it() -> None:
    index = JitIndex([JitSymbol(CODE, 16, "late", 7, 9), JitSymbol(CODE, 16, "early", 4, 5)])
    found = index.lookup(CODE, 1)
    assert found is not None and found.name == "early"
    assert index.lookup(CODE + 16, 4) is None


def test_entries_without_ranges_name_as_before() -> None:
    # GIVEN entries of a file that predates time ranges: the greatest covering start wins
    index = JitIndex([JitSymbol(CODE, 0x100, "outer"), JitSymbol(CODE + 0x10, 8, "inner")])
    assert not index.timed
    assert [getattr(index.lookup(a, 5), "name", None) for a in (CODE, CODE + 0x10,
                                                                CODE + 0x18)] == [
        "outer", "inner", "outer"]


def _jit_recording(tmp_path: Path) -> Path:
    """The sample recording's app with one JIT address named "a" then "b" over time."""
    rec = sample_recording()
    app = dataclasses.replace(rec.processes[0], jit=(
        JitSymbol(CODE, 16, "js_a", 0, 4), JitSymbol(CODE, 16, "js_b", 5, 9)))
    rec = dataclasses.replace(
        rec, processes=(app, *rec.processes[1:]), stacks=(*rec.stacks, (CODE + 2,)),
        samples=(Sample(0, 4242, 0, "app", len(rec.stacks), -1, 3, 3, bucket=1),
                 Sample(0, 4242, 0, "app", len(rec.stacks), -1, 5, 5, bucket=7)))
    path = tmp_path / "jit.bee"
    codec.write(rec, path)
    return path


def test_report_names_a_reused_address_per_bucket(tmp_path: Path) -> None:
    # GIVEN a recording whose one JIT address held two functions one after the other
    path = _jit_recording(tmp_path)
    assert codec.read(path).processes[0].jit[1] == JitSymbol(CODE, 16, "js_b", 5, 9)
    # WHEN reported THEN each sample is named by the function there at its time
    out = run_bee("report", path, "-f", "folded")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "app;js_a_[j] 3\napp;js_b_[j] 5\n"


@pytest.mark.parametrize("version", [1, 2])
def test_jit_rows_without_a_range_apply_at_any_time(tmp_path: Path, version: int) -> None:
    # GIVEN jit rows of three columns (v1, or a v2 writer before ranges were added), and a
    # v1 file with five (its reader ignores trailing columns)
    body = _body()
    body["processes"][0][8] = [[CODE, 16, 0], [CODE + 16, 16, 0, 4, 5]]  # type: ignore[index]
    if version == 1:  # v1 rows end at the event column
        body["samples"] = [row[:9] for row in body["samples"]]  # type: ignore[attr-defined]
    # WHEN read
    got = codec.read(_write_body(tmp_path / "o.bee", body, version))
    # THEN the entries apply at any time (v2 keeps the range it was given)
    last = (4, 5) if version == 2 else (0, ALL_BUCKETS)
    name = body["strings"][0]  # type: ignore[index]
    assert got.processes[0].jit == (JitSymbol(CODE, 16, name, 0, ALL_BUCKETS),
                                    JitSymbol(CODE + 16, 16, name, *last))


def _written(tmp_path: Path, rec: object) -> Path:
    path = tmp_path / "r.bee"
    codec.write(rec, path)  # type: ignore[arg-type]
    return path


def test_a_range_that_ends_before_it_starts_is_refused(tmp_path: Path) -> None:
    rec = sample_recording()
    app = dataclasses.replace(rec.processes[0], jit=(JitSymbol(CODE, 16, "js", 5, 2),))
    path = _written(tmp_path, dataclasses.replace(rec, processes=(app, *rec.processes[1:])))
    with pytest.raises(RecordingFormatError, match=r"jit\[0\].last_bucket"):
        codec.read(path)


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 64), st.integers(0, 24)),
                                 max_size=40), min_size=1, max_size=4))
def test_painting_in_bulk_names_like_painting_line_by_line(
    batches: list[list[tuple[int, int]]],
) -> None:
    # GIVEN the same perf-map lines fed in batches, painted in bulk and line by line
    def feed(bulk: int) -> PerfMap:
        perf_map = PerfMap(())
        with mock.patch.object(perfmap, "_BULK", bulk):
            line = 0
            for n, batch in enumerate(batches):
                text = "".join(f"{start:x} {size:x} f{line + i}\n"
                               for i, (start, size) in enumerate(batch))
                line += len(batch)
                perf_map._feed(text.encode(), 2 * n - 1)
        return perf_map
    bulk, single = feed(-1), feed(1 << 30)
    # THEN every address is named alike, now and at every earlier time
    for address in range(0, 90):
        assert getattr(bulk.lookup(address), "line", None) == getattr(
            single.lookup(address), "line", None)
        for bucket in range(-1, 2 * len(batches)):
            assert getattr(bulk.lookup_at(address, bucket), "line", None) == getattr(
                single.lookup_at(address, bucket), "line", None), (address, bucket)

"""The recording format: round trips, the committed sample, and every way a file can be bad."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

from bee_contract import codec
from bee_contract.errors import RecordingFormatError
from bee_contract.recording import (
    ALL_BUCKETS,
    LOST_STACK,
    NO_STACK,
    PY_ENTRY,
    PY_TRUNCATED,
    TRUNCATED_FRAME,
    Recording,
)
from formats.make_sample import SAMPLE, SAMPLE_V1, sample_recording


def _write_body(path: Path, body: object, version: int = codec.FORMAT_VERSION) -> Path:
    raw = zlib.compress(msgpack.packb(body, use_bin_type=True))
    pre = struct.pack(">8sHBBQI", codec.MAGIC, version, 1, 0, len(raw), zlib.crc32(raw))
    path.write_bytes(pre + raw)
    return path


def test_round_trip_preserves_every_field(tmp_path: Path) -> None:
    # GIVEN a recording with every table filled
    rec = sample_recording()
    # WHEN it is written and read back
    path = tmp_path / "r.bee"
    codec.write(rec, path)
    back = codec.read(path)
    # THEN it is equal, field by field
    assert back == rec


def test_uncompressed_round_trip(tmp_path: Path) -> None:
    rec = sample_recording()
    path = tmp_path / "r.bee"
    codec.write(rec, path, compress=False)
    assert codec.read(path) == rec
    assert path.read_bytes()[10] == codec.COMPRESSION_NONE


def test_committed_sample_matches_its_generator() -> None:
    # GIVEN the committed sample file and the script that makes it
    # THEN the bytes are identical (the spec's sample cannot drift from the code)
    assert SAMPLE.read_bytes() == codec.encode(sample_recording())


def test_file_is_written_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "r.bee"
    codec.write(sample_recording(), path)
    assert path.stat().st_mode & 0o777 == 0o600


def test_failed_write_leaves_nothing_under_the_final_name(tmp_path: Path) -> None:
    # GIVEN a folder that cannot be written
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    target = folder / "r.bee"
    try:
        # WHEN writing there (root ignores mode bits, so use a missing folder as well)
        with pytest.raises(Exception) as err:
            codec.write(sample_recording(), tmp_path / "missing" / "r.bee")
        assert "cannot write" in str(err.value)
    finally:
        folder.chmod(0o700)
    # THEN no file and no temporary file are left behind
    assert not target.exists()
    assert list(folder.iterdir()) == []


def test_newer_version_is_refused_with_its_own_message(tmp_path: Path) -> None:
    data = bytearray(codec.encode(sample_recording()))
    data[8:10] = struct.pack(">H", codec.FORMAT_VERSION + 1)
    path = tmp_path / "new.bee"
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingFormatError,
                       match=f"format version {codec.FORMAT_VERSION + 1} is newer"):
        codec.read(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"perf data not ours" * 4, "not a bee recording"),
        (codec.MAGIC + b"\x00", "incomplete header"),
    ],
)
def test_foreign_and_short_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.bee"
    path.write_bytes(content)
    with pytest.raises(RecordingFormatError, match=message) as err:
        codec.read(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("cut", [30, 100, 300, -1])
def test_truncated_files(tmp_path: Path, cut: int) -> None:
    data = codec.encode(sample_recording())
    path = tmp_path / "t.bee"
    path.write_bytes(data[:cut])
    with pytest.raises(RecordingFormatError, match="truncated"):
        codec.read(path)


def test_flipped_byte_is_caught_by_the_checksum(tmp_path: Path) -> None:
    data = bytearray(codec.encode(sample_recording()))
    data[len(data) // 2] ^= 0x40
    path = tmp_path / "c.bee"
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingFormatError, match="checksum"):
        codec.read(path)


def test_directory_is_not_a_recording(tmp_path: Path) -> None:
    with pytest.raises(RecordingFormatError, match="directory"):
        codec.read(tmp_path)


def _body() -> dict[str, object]:
    raw = codec.encode(sample_recording(), compress=False)[codec.PREAMBLE_SIZE:]
    return msgpack.unpackb(raw)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("samples"), "missing 'samples'"),
        (lambda b: b["samples"][0].__setitem__(0, 99), r"samples\[0\].process"),
        (lambda b: b["samples"][0].__setitem__(4, 99), r"samples\[0\].user_stack"),
        (lambda b: b["stacks"][0].__setitem__(0, 10**6), r"stacks\[0\]"),
        (lambda b: b["processes"][0][7][0].__setitem__(6, 5), r"maps\[0\].binary"),
        (lambda b: b["binaries"][0].__setitem__(1, "../../etc/passwd"), "build-id"),
        (lambda b: b["header"].__setitem__("weight_unit", "parsecs"), "weight_unit"),
        (lambda b: b["header"].__setitem__("host", 5), "header.host"),
        (lambda b: b["strings"].append(7), r"strings\[\d+\]"),
        (lambda b: b["kernel"]["symbols"].reverse(), "not sorted"),
        (lambda b: b["processes"][0][7][0].__setitem__(1, 0), "ends before it starts"),
        (lambda b: b["samples"][0].__setitem__(9, 10), r"samples\[0\].bucket"),
        (lambda b: b["samples"][0].__setitem__(9, -1), r"samples\[0\].bucket"),
        (lambda b: b["header"].__setitem__("time_resolution_ns", -5), "time_resolution_ns"),
        (lambda b: b["header"].__setitem__("time_resolution_ns", 0), r"samples\[\d\].bucket"),
    ],
)
def test_semantic_corruption_names_the_field(tmp_path: Path, mutate: object, message: str) -> None:
    # GIVEN a well-formed file whose content was altered (checksum kept valid)
    body = _body()
    mutate(body)  # type: ignore[operator]
    path = _write_body(tmp_path / "m.bee", body)
    # WHEN read THEN one error names the field
    with pytest.raises(RecordingFormatError, match=message):
        codec.read(path)


def test_hostile_array_length_is_refused_before_allocation(tmp_path: Path) -> None:
    # GIVEN a body claiming an array of 4 billion items in a few bytes
    raw = b"\x81\xa7strings\xdd\xff\xff\xff\xff"
    pre = struct.pack(">8sHBBQI", codec.MAGIC, 1, 0, 0, len(raw), zlib.crc32(raw))
    path = tmp_path / "h.bee"
    path.write_bytes(pre + raw)
    with pytest.raises(RecordingFormatError, match="corrupt: strings declares 4294967295 entries"):
        codec.read(path)


def test_unknown_optional_keys_are_ignored(tmp_path: Path) -> None:
    # GIVEN a file with an extra key and an extra trailing sample column (allowed additions)
    body = _body()
    body["future_table"] = [1, 2, 3]
    body["samples"][0] += [-1, "extra"]  # type: ignore[operator]  # columns 11 and 12
    path = _write_body(tmp_path / "f.bee", body)
    # THEN it still reads, with the same samples
    assert codec.read(path).samples == sample_recording().samples


def test_older_reader_fields_default(tmp_path: Path) -> None:
    body = _body()
    del body["header"]["argv"]  # type: ignore[attr-defined]
    del body["lost"]
    rec = codec.read(_write_body(tmp_path / "o.bee", body))
    assert rec.header.argv == () and rec.lost == {}
    assert dataclasses.replace(rec, lost=sample_recording().lost).samples == rec.samples


def test_version_1_file_reads_as_one_bucket_spanning_the_recording() -> None:
    # GIVEN the sample as format version 1 wrote it (no time_resolution_ns, 9 columns)
    assert SAMPLE_V1.read_bytes()[8:10] == struct.pack(">H", 1)
    # WHEN read
    rec = codec.read(SAMPLE_V1)
    # THEN every sample is in bucket 0, which spans the whole recording
    assert rec.header.time_resolution_ns == 0
    assert {s.bucket for s in rec.samples} == {0}
    h = rec.header
    assert h.bucket_span(0) == (h.start_time_ns, h.start_time_ns + h.duration_ns)
    # AND its samples are those of the v2 sample's first rows (which adds JIT, truncated
    # and Python stacks after them), once buckets are summed
    def totals(r: object) -> dict[tuple[object, ...], int]:
        out: dict[tuple[object, ...], int] = {}
        for x in r.samples:  # type: ignore[attr-defined]
            key = (x.process, x.tid, x.cpu, x.comm, x.user_stack, x.kernel_stack, x.event)
            out[key] = out.get(key, 0) + x.count
        return out
    v1, v2 = totals(rec), totals(sample_recording())
    assert len(v1) == 4 and v1 == {key: v2[key] for key in v1}


def test_version_1_reads_column_9_as_the_python_stack(tmp_path: Path) -> None:
    # GIVEN a v1 file whose rows carry a tenth column (v1: the python stack, not a bucket)
    body = _body()
    for row in body["samples"]:  # type: ignore[union-attr]
        row[9] = -2  # type: ignore[index]
    rec = codec.read(_write_body(tmp_path / "v1.bee", body, version=1))
    # THEN v1 meaning applies: a lost Python stack, no time buckets
    assert rec.samples[0].python_stack == LOST_STACK and rec.samples[0].bucket == 0
    assert rec.header.time_resolution_ns == 0


def test_bucket_span_of_a_v2_sample() -> None:
    rec = codec.read(SAMPLE)
    h = rec.header
    assert [s.bucket for s in rec.samples] == [2, 7, 3, 3, 9, 3, 7, 5, 4, 6, 6]
    assert h.bucket_span(7) == (h.start_time_ns + 700_000_000, h.start_time_ns + 800_000_000)


def _plain(rec: Recording) -> Recording:
    """`rec` with every optional addition of version 2 at its default (as absent)."""
    return dataclasses.replace(
        rec,
        header=dataclasses.replace(rec.header, argv=(), sequence=0, unwinder=""),
        processes=tuple(dataclasses.replace(
            p, python=None, jit=tuple(dataclasses.replace(j, first_bucket=0,
                                                          last_bucket=ALL_BUCKETS)
                                      for j in p.jit))
            for p in rec.processes),
        samples=tuple(dataclasses.replace(x, python_stack=NO_STACK) for x in rec.samples),
        python_stacks=(),
        kernel=dataclasses.replace(rec.kernel, vdso=b""),
        lost={},
    )


#: Each optional field of version 2, as read from a Recording.
OPTIONAL_FIELDS: list[tuple[str, Callable[[Recording], object]]] = [
    ("header.argv", lambda r: r.header.argv),
    ("header.sequence", lambda r: r.header.sequence),
    ("header.unwinder", lambda r: r.header.unwinder),
    ("processes[].jit buckets",
     lambda r: [(j.first_bucket, j.last_bucket) for p in r.processes for j in p.jit]),
    ("processes[].python", lambda r: [p.python for p in r.processes]),
    ("samples[].python_stack", lambda r: [x.python_stack for x in r.samples]),
    ("python_stacks", lambda r: r.python_stacks),
    ("kernel.vdso", lambda r: r.kernel.vdso),
    ("lost", lambda r: r.lost),
]


@pytest.mark.parametrize(("name", "get"), OPTIONAL_FIELDS, ids=[n for n, _ in OPTIONAL_FIELDS])
def test_every_optional_v2_field_round_trips(tmp_path: Path, name: str,
                                             get: Callable[[Recording], object]) -> None:
    # GIVEN the sample (in a --rotate series, its only field the sample leaves at default)
    rec = sample_recording()
    rec = dataclasses.replace(rec, header=dataclasses.replace(rec.header, sequence=3))
    assert get(rec) != get(_plain(rec)), f"the sample leaves {name} at its default"
    # WHEN written and read back
    path = tmp_path / "r.bee"
    codec.write(rec, path)
    back = codec.read(path)
    # THEN the field is kept, and without it the file reads as its default
    assert get(back) == get(rec)
    codec.write(_plain(rec), path)
    assert get(codec.read(path)) == get(_plain(rec))


def test_optional_v2_fields_are_left_out_when_unused() -> None:
    # GIVEN the sample without its optional additions
    rec = _plain(sample_recording())
    # WHEN encoded
    body = msgpack.unpackb(codec.encode(rec, compress=False)[codec.PREAMBLE_SIZE:])
    # THEN no key or column of theirs is written
    assert "unwinder" not in body["header"] and "vdso" not in body["kernel"]
    assert "python_stacks" not in body
    assert {len(row) for row in body["processes"]} == {9}
    assert {len(row) for row in body["samples"]} == {10}


def test_the_sample_shows_the_marks_the_spec_describes() -> None:
    # GIVEN the committed sample, read back
    rec = codec.read(SAMPLE)
    # THEN it holds a truncated user stack, a Python entry frame and a cut Python stack,
    # a lost Python stack, two JIT rows covering one address in different buckets
    assert any(st[-1] == TRUNCATED_FRAME for st in rec.stacks)
    pairs = [pair for st in rec.python_stacks for pair in st]
    assert any(info & PY_ENTRY for _, info in pairs)
    assert any(st[-1][0] == PY_TRUNCATED for st in rec.python_stacks)
    assert any(x.python_stack == LOST_STACK for x in rec.samples)
    jit = [j for p in rec.processes for j in p.jit]
    assert len({j.start for j in jit}) < len(jit)
    assert len({(j.first_bucket, j.last_bucket) for j in jit}) == len(jit)
    assert rec.kernel.vdso.startswith(b"\x7fELF")
    assert any(m.path == "[vdso]" for p in rec.processes for m in p.maps)

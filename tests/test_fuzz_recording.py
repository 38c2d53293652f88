"""Untrusted recordings: random and mutated files never give a traceback.

A bounded number of hypothesis cases runs in CI; `fuzz/fuzz_recording.py` is the atheris
target for longer runs (see the README's testing section).
"""

from __future__ import annotations

import itertools
import struct
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee_contract import codec
from bee_contract.errors import BeeError, RecordingFormatError
from bee_report.report import ReportOptions, render
from bee_report.symbolize import Symbolizer
from formats.make_sample import sample_recording

SAMPLE = codec.encode(sample_recording(), compress=False)
BODY = msgpack.unpackb(SAMPLE[codec.PREAMBLE_SIZE:])
#: The sample's process with JIT rows and its CPython process (indices into processes).
JIT_PROC = next(i for i, p in enumerate(BODY["processes"]) if p[8])
PY_PROC = next(i for i, p in enumerate(BODY["processes"]) if len(p) > 9 and p[9])
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _file(tmp: Path, raw: bytes, compress: bool = False) -> Path:
    if compress:
        raw = zlib.compress(raw)
    pre = struct.pack(">8sHBBQI", codec.MAGIC, codec.FORMAT_VERSION, 1 if compress else 0, 0,
                      len(raw), zlib.crc32(raw))
    path = tmp / "f.bee"
    path.write_bytes(pre + raw)
    return path


def _read_and_report(path: Path) -> None:
    """Read, symbolize and render every text format; only BeeError may escape."""
    try:
        rec = codec.read(path)
    except RecordingFormatError:
        return
    sym = Symbolizer()
    try:
        profile = sym.profile([(str(path), rec)])
        for fmt in ("folded", "top", "speedscope", "pprof"):
            render(profile, ReportOptions(files=(path,), format=fmt))
    except BeeError:
        pass
    finally:
        sym.close()


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_after_a_valid_preamble(tmp_path_factory: Any, data: bytes) -> None:
    _read_and_report(_file(tmp_path_factory.mktemp("r"), data))


@FUZZ
@given(base=st.just(SAMPLE),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      min_size=1, max_size=8))
def test_byte_flips_with_a_valid_checksum(tmp_path_factory: Any, base: bytes,
                                          flips: list[tuple[float, int]]) -> None:
    # GIVEN the sample's body (it has JIT buckets and Python stacks) with bytes
    # flipped and the checksum recomputed, so the damage reaches the decoder and validator
    body = bytearray(base[codec.PREAMBLE_SIZE:])
    for where, mask in flips:
        body[int(where * len(body))] ^= mask
    _read_and_report(_file(tmp_path_factory.mktemp("f"), bytes(body), compress=True))


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                  st.text(max_size=20), st.binary(max_size=20), st.floats())
_tree = st.recursive(_leaf, lambda c: st.lists(c, max_size=5) | st.dictionaries(
    st.text(max_size=10), c, max_size=5), max_leaves=30)


@FUZZ
@given(key=st.sampled_from(sorted(BODY)), value=_tree)
def test_any_table_replaced_by_any_value(tmp_path_factory: Any, key: str, value: Any) -> None:
    body = dict(BODY)
    body[key] = value
    raw = msgpack.packb(body, use_bin_type=True)
    _read_and_report(_file(tmp_path_factory.mktemp("t"), raw))


@FUZZ
@given(table=st.sampled_from(["samples", "processes", "binaries", "stacks", "python_stacks",
                              "jit", "python"]),
       row=st.integers(0, 3), col=st.integers(0, 10), value=_leaf)
def test_any_cell_replaced(tmp_path_factory: Any, table: str, row: int, col: int,
                           value: Any) -> None:
    # GIVEN the sample with one cell of a table replaced; "jit" and "python" are the
    # JIT process's symbols (with their bucket columns) and the CPython process's column
    body = msgpack.unpackb(SAMPLE[codec.PREAMBLE_SIZE:])
    jit, py = body["processes"][JIT_PROC], body["processes"][PY_PROC]
    rows = {"jit": jit[8], "python": [py[9], *py[9][1]]}.get(table) or body[table]
    if row < len(rows) and isinstance(rows[row], list) and col < len(rows[row]):
        rows[row][col] = value
    raw = msgpack.packb(body, use_bin_type=True)
    _read_and_report(_file(tmp_path_factory.mktemp("c"), raw))


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    # GIVEN a body nested far deeper than any recording (msgpack arrays of arrays)
    raw = b"\x91" * 100_000 + b"\xc0"
    with_path = _file(tmp_path, raw)
    try:
        codec.read(with_path)
    except RecordingFormatError as exc:
        assert str(with_path) in str(exc)
    else:
        raise AssertionError("a 100000-deep body was accepted")


def test_huge_string_claim_is_refused_before_allocation(tmp_path: Path) -> None:
    raw = b"\x81\xa7strings\x91\xdb\xff\xff\xff\xf0"  # one str claiming 4 GiB
    try:
        codec.read(_file(tmp_path, raw))
    except RecordingFormatError as exc:
        assert "corrupt body" in str(exc)
    else:
        raise AssertionError("accepted")


@FUZZ
@given(order=st.permutations(sorted(BODY)), compress=st.booleans(),
       extra_samples=st.integers(0, 40), depth=st.integers(0, 300))
def test_streamed_decoding_is_independent_of_key_order(
        tmp_path_factory: Any, order: list[str], compress: bool, extra_samples: int,
        depth: int) -> None:
    # GIVEN the sample with more samples and a deeper stack, its top-level keys in any order
    body = msgpack.unpackb(SAMPLE[codec.PREAMBLE_SIZE:])
    body["stacks"][0] = [i % len(body["addresses"]) for i in range(depth + 1)]
    body["samples"] += [[PY_PROC, 5000 + i, 0, 0, 0, -1, 1, 1, 0, i % 10, i % 2 - 1]
                        for i in range(extra_samples)]
    reordered = {key: body[key] for key in order}
    # WHEN read THEN the streamed two-pass decoder gives what the key order does not change
    got = codec.read(_file(tmp_path_factory.mktemp("o"), msgpack.packb(reordered), compress))
    want = codec.read(_file(tmp_path_factory.mktemp("p"), msgpack.packb(body), compress))
    assert got == want
    assert len(got.samples) == len(sample_recording().samples) + extra_samples
    assert len(got.stacks[0]) == depth + 1
    assert got.python_stacks == sample_recording().python_stacks
    assert got.processes[JIT_PROC].jit == sample_recording().processes[JIT_PROC].jit
    assert got.processes[JIT_PROC].jit


@FUZZ
@given(table=st.sampled_from(["strings", "addresses", "stacks", "samples", "binaries",
                              "processes", "python_stacks"]),
       declared=st.integers(0, 2**32 - 1), tail=st.binary(max_size=64))
def test_any_declared_table_length(tmp_path_factory: Any, table: str, declared: int,
                                   tail: bytes) -> None:
    # GIVEN a table whose array header declares any length, followed by anything
    body = dict(BODY)
    body.pop(table)
    raw = msgpack.packb(body)
    n = len(body) + 1
    raw = bytes([0x80 | n]) + raw[1:] + msgpack.packb(table) + b"\xdd" + \
        declared.to_bytes(4, "big") + tail
    # WHEN read THEN it is a recording or one RecordingFormatError, never a crash
    _read_and_report(_file(tmp_path_factory.mktemp("d"), raw))


class _CheckedRowsOnly(codec._Decoder):
    """The decoder with its one-expression row check taken out: every sample row goes
    through the field-by-field check that names the bad field."""

    def samples(self, u: msgpack.Unpacker) -> tuple[Any, ...]:
        n = self._array(u, "samples")
        rows = list(itertools.islice(u, n))
        if len(rows) < n:
            raise msgpack.OutOfData
        return tuple(self._sample_checked(self.list_(row, f"samples[{i}]", 9), f"samples[{i}]")
                     for i, row in enumerate(rows))


def _near(*edges: int) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted({e + d for e in edges for d in (-1, 0, 1)}))


_N_STACKS = len(BODY["stacks"])
#: The bounds of each sample column (version 2: bucket is column 9, the Python stack 10;
#: version 1 reads column 9 as the Python stack, so both columns get both kinds of bound).
_EDGES: list[tuple[int, ...]] = [
    (0, len(BODY["processes"])), (0, 1 << 32), (0, 1 << 20), (0, len(BODY["strings"])),
    (-2, _N_STACKS), (-2, _N_STACKS), (0, 2**64 - 2), (0, 2**64 - 2),
    (0, len(BODY["header"]["events"])),
    (-2, 0, codec._max_bucket(sample_recording().header), len(BODY["python_stacks"])),
    (-2, 0, len(BODY["python_stacks"])), (0,)]
_OTHER: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, False, 1.0, "0", b"\x00", [], [0], {}])


@st.composite
def _cell(draw: st.DrawFn) -> tuple[int, Any]:
    """A column and a value at or around one of its bounds, or of another type."""
    col = draw(st.integers(0, len(_EDGES) - 1))
    near = _near(*_EDGES[col])
    value = draw(st.one_of(near, near, near, _OTHER, st.integers(-(2**63), 2**64 - 1)))
    return col, value


@settings(FUZZ, max_examples=1000)
@given(base=st.sampled_from(BODY["samples"]),
       cells=st.lists(_cell(), min_size=1, max_size=2),
       length=st.integers(9, 12), v1=st.booleans())
def test_fast_and_checked_sample_rows_agree(tmp_path_factory: Any, base: list[Any],
                                            cells: list[tuple[int, Any]], length: int,
                                            v1: bool) -> None:
    # GIVEN a recording (version 1 or the current one) whose one sample row is a valid
    # row cut or padded to 9-12 columns, with up to two cells set at or around a bound of
    # the row's columns, or to a value of another type
    row = (base + [0] * 3)[:length]
    for col, value in cells:
        if col < length:
            row[col] = value
    body = msgpack.unpackb(SAMPLE[codec.PREAMBLE_SIZE:])
    body["samples"] = [row]
    raw = msgpack.packb(body, use_bin_type=True)
    path = _file(tmp_path_factory.mktemp("s"), raw)
    if v1:
        data = bytearray(path.read_bytes())
        struct.pack_into(">H", data, 8, 1)
        path.write_bytes(bytes(data))

    def outcome() -> Any:
        try:
            return codec.read(path).samples
        except RecordingFormatError as exc:
            return str(exc)

    # WHEN it is read with the one-expression row check, and with the field-by-field one
    fast = outcome()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(codec, "_Decoder", _CheckedRowsOnly)
        checked = outcome()
    # THEN both accept the same row as the same sample, or refuse it with the same message
    assert fast == checked

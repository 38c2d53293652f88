"""Pure logic of the record side, without BPF: /proc maps, JIT perf maps, rotated names,
build-id notes."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from bee_contract.buildid import build_id_in_notes
from bee_record.collect import rotated_path
from bee_record.perfmap import PerfMap
from bee_record.procs import parse_maps

MAPS = """\
55d0c0a00000-55d0c0a28000 r--p 00000000 fd:01 1049 /usr/bin/python3.11
55d0c0a28000-55d0c0cf0000 r-xp 00028000 fd:01 1049 /usr/bin/python3.11
7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0
7f1e2c228000-7f1e2c3bd000 r-xp 00028000 fd:01 2305 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2c400000-7f1e2c401000 r-xp 00000000 00:05 77 /memfd:jit (deleted)
7f1e2c500000-7f1e2c510000 rwxp 00000000 00:00 0
7ffd6a3f0000-7ffd6a3f2000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
"""


def test_parse_maps_keeps_executable_mappings_with_their_file_identity() -> None:
    # WHEN a real-looking maps file is parsed
    rows = parse_maps(MAPS)
    # THEN only executable mappings remain, with offsets, device, inode and clean paths
    assert rows == [
        (0x55D0C0A28000, 0x55D0C0CF0000, 0x28000, os.makedev(0xFD, 1), 1049,
         "/usr/bin/python3.11"),
        (0x7F1E2C228000, 0x7F1E2C3BD000, 0x28000, os.makedev(0xFD, 1), 2305,
         "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        (0x7F1E2C400000, 0x7F1E2C401000, 0, os.makedev(0, 5), 77, "/memfd:jit"),
        (0x7F1E2C500000, 0x7F1E2C510000, 0, 0, 0, ""),
        (0x7FFD6A3F0000, 0x7FFD6A3F2000, 0, 0, 0, "[vdso]"),
        (0xFFFFFFFFFF600000, 0xFFFFFFFFFF601000, 0, 0, 0, "[vsyscall]"),
    ]


@pytest.mark.parametrize("line", [
    "",
    "garbage",
    "zz-10 r-xp 0 00:00 0 /x",
    "10-20 r-xp 0 0000 0 /x",  # device without a colon
    "10-20 r-xp 0 00:00 notanumber /x",
])
def test_parse_maps_skips_malformed_lines(line: str) -> None:
    assert parse_maps(line + "\n10-20 r-xp 0 00:00 0 /ok\n") == [(0x10, 0x20, 0, 0, 0, "/ok")]


def _current(tmp_path: Path, data: bytes) -> list[tuple[int, int, str]]:
    """The (start, end, name) segments a perf map holding `data` names, sorted by start."""
    path = tmp_path / "perf.map"
    path.write_bytes(data)
    perf_map = PerfMap((str(path),))
    assert perf_map.update()
    return [(s, e, n.name) for s, e, n in
            zip(perf_map._starts, perf_map._ends, perf_map._entries, strict=True)]


def test_perf_map_reads_hex_entries_sorted_and_skips_junk(tmp_path: Path) -> None:
    # GIVEN a perf map as a JIT writes it, with junk lines and names containing spaces
    data = (b"7f00001000 40 LazyCompile:~main app.js:1\n"
            b"not a line\n"
            b"7f00000000 10 [stub] interpreter entry\n"
            b"zz 10 bad start\n"
            b"7f00002000 20\n"  # no name
            b"-10 10 signed\n"
            b"1_0 10 underscored\n"
            b"10000000000000000 10 beyond 64 bits\n"
            b"7f00003000 8 caf\xc3\xa9 \xff\n")
    # THEN the entries come sorted by start, names kept whole (bad UTF-8 replaced)
    assert _current(tmp_path, data) == [
        (0x7F00000000, 0x7F00000010, "[stub] interpreter entry"),
        (0x7F00001000, 0x7F00001040, "LazyCompile:~main app.js:1"),
        (0x7F00003000, 0x7F00003008, "caf\u00e9 \ufffd"),
    ]


def test_perf_map_later_line_for_one_start_wins(tmp_path: Path) -> None:
    data = b"1000 10 old\n1000 20 new\n"
    assert _current(tmp_path, data) == [(0x1000, 0x1020, "new")]


@pytest.mark.parametrize(("path", "sequence", "expect"), [
    ("out.bee", 1, "out.0001.bee"),
    ("/tmp/run/out.bee", 12, "/tmp/run/out.0012.bee"),
    ("out", 3, "out.0003"),
    ("dir.d/out", 2, "dir.d/out.0002"),  # a dot in a folder name is not a suffix
    ("a.b.bee", 10000, "a.b.10000.bee"),
])
def test_rotated_path_numbers_before_the_suffix(path: str, sequence: int, expect: str) -> None:
    assert rotated_path(path, sequence) == expect


def _note(name: bytes, n_type: int, desc: bytes) -> bytes:
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), n_type) + pad(name) + pad(desc)


def test_build_id_is_found_after_other_notes_in_a_kernel_notes_blob() -> None:
    # GIVEN /sys/kernel/notes-like data: a Xen note with an odd-sized name, then GNU's
    blob = _note(b"Xen\0\0", 6, b"\x01\x02\x03") + _note(b"GNU\0", 3, bytes(range(20)))
    # THEN the build-id is its 20 bytes in hex; a truncated blob gives none
    assert build_id_in_notes(blob, little_endian=True) == bytes(range(20)).hex()
    assert build_id_in_notes(blob[:-4], little_endian=True) is None
    assert build_id_in_notes(_note(b"GNU\0", 1, b"abcd"), little_endian=True) is None

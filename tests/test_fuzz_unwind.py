"""Untrusted call-frame information and unwind-table cache files never get past their checks.

The binaries a recorded process maps are hostile: the CFI decoder must end in rows or one
CfiError, in time linear in the section. A cache file that changed in any byte is rebuilt,
never used. Bounded hypothesis runs for CI; `fuzz/fuzz_unwind.py` is the atheris target.
"""

from __future__ import annotations

import functools
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee_contract.buildid import build_id_of_path
from bee_contract.elf import ElfImage
from bee_record.unwind import cfi, table
from tests.conftest import FIXTURES

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
_WINDOW = 16 << 10


@functools.cache
def _fixture_binary() -> Path:
    out = Path(__import__("tempfile").mkdtemp(prefix="bee-fuzz-unwind-")) / "funcs"
    subprocess.run(["cc", "-O1", "-g", "-fno-asynchronous-unwind-tables", "-o", str(out),
                    str(FIXTURES / "elf" / "funcs.c")], check=True)
    return out


def _section(path: str, name: str) -> tuple[bytes, int]:
    with ElfImage.open(path) as image:
        section = image.section(name)
        assert section is not None
        return bytes(image.section_bytes(section)), section.addr


@functools.cache
def seeds() -> dict[str, tuple[bytes, int, bool]]:
    """Real sections: the start of libc's .eh_frame (whole entries), a small binary's
    .eh_frame and its .debug_frame."""
    libc, libc_addr = _section(LIBC, ".eh_frame")
    cut = 0
    while cut < _WINDOW:  # whole entries only, so the seed itself decodes
        cut += 4 + struct.unpack_from("<I", libc, cut)[0]
    small = str(_fixture_binary())
    eh, eh_addr = _section(small, ".eh_frame")
    debug, _ = _section(small, ".debug_frame")
    return {"libc": (libc[:cut], libc_addr, True), "eh": (eh, eh_addr, True),
            "debug": (debug, 0, False)}


def _decode_or_cfi_error(data: bytes, addr: int, eh: bool) -> list[cfi.Row] | None:
    try:
        rows = cfi.decode(data, addr, eh)
    except cfi.CfiError:
        return None
    # rows come from instruction bytes and FDE ends: never more than the section's bytes
    assert len(rows) <= len(data)
    return rows


def test_seeds_decode() -> None:
    # GIVEN the unmutated seeds THEN each gives rows (so mutations start from real CFI)
    for data, addr, eh in seeds().values():
        rows = cfi.decode(data, addr, eh)
        assert rows and {r[1] for r in rows} & {cfi.KIND_CFA_RSP, cfi.KIND_CFA_RBP}


@FUZZ
@given(seed=st.sampled_from(["libc", "eh", "debug"]),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_real_cfi(seed: str, flips: list[tuple[float, int]], cut: float | None) -> None:
    # GIVEN real CFI with bytes flipped, and maybe cut short
    data, addr, eh = seeds()[seed]
    body = bytearray(data)
    for where, mask in flips:
        body[int(where * len(body))] ^= mask
    if cut is not None:
        del body[int(cut * len(body)):]
    # WHEN decoded THEN rows (bounded) or one CfiError, nothing else
    _decode_or_cfi_error(bytes(body), addr, eh)


@FUZZ
@given(data=st.binary(max_size=1024), eh=st.booleans(), addr=st.integers(0, 1 << 48))
def test_random_bytes(data: bytes, eh: bool, addr: int) -> None:
    _decode_or_cfi_error(data, addr, eh)


def _entry(body: bytes) -> bytes:
    return struct.pack("<I", len(body)) + body


@FUZZ
@given(aug=st.sampled_from([b"", b"zR", b"zPLR", b"zRS", b"eh", b"zQ"]),
       aug_data=st.binary(max_size=12), cie_code=st.binary(max_size=64),
       fde_code=st.binary(max_size=64), pc_range=st.integers(0, 1 << 20),
       eh=st.booleans())
def test_well_framed_entries_with_any_instructions(aug: bytes, aug_data: bytes,
                                                   cie_code: bytes, fde_code: bytes,
                                                   pc_range: int, eh: bool) -> None:
    # GIVEN a CIE and an FDE whose framing is right, with any augmentation data and
    # any CFA instructions (so the fuzzing reaches the instruction interpreter)
    cie_id = b"\0\0\0\0" if eh else b"\xff\xff\xff\xff"
    aug_part = bytes([len(aug_data)]) + aug_data if aug.startswith(b"z") else b""
    cie = _entry(cie_id + b"\x01" + aug + b"\0\x01\x78\x10" + aug_part + cie_code)
    fde_id = struct.pack("<I", len(cie) + 4 if eh else 0)
    fde_aug = b"\0" if aug.startswith(b"z") else b""
    fde = _entry(fde_id + struct.pack("<QQ", 0x1000, pc_range) + fde_aug + fde_code)
    _decode_or_cfi_error(cie + fde, 0, eh)


def test_fde_naming_a_cie_outside_the_entries_is_refused_at_once() -> None:
    # GIVEN FDEs whose CIE pointers lead before the section (Python's negative indexes
    # once made each of them run the whole section's tail as CIE instructions: 1 MiB of
    # nops and 300 FDEs took 24 s)
    nops = 1 << 16
    fdes = b""
    for i in range(64):
        id_pos = len(fdes) + 4
        fdes += _entry(struct.pack("<IQQ", (id_pos + nops - 16 - 8 * i) & 0xFFFFFFFF,
                                   0x1000 + 16 * i, 16))
    data = fdes + _entry(b"\0\0\0\0" + b"\0" * nops)
    # WHEN decoded THEN one CfiError naming the bad pointer
    with pytest.raises(cfi.CfiError, match="names no CIE"):
        cfi.decode(data, 0, True)


def test_unterminated_augmentation_is_a_cfi_error() -> None:
    # GIVEN a .debug_frame whose CIE (after its FDE) has no NUL ending its augmentation
    fde = _entry(struct.pack("<IQQ", 24, 0x1000, 16))
    cie = _entry(b"\xff\xff\xff\xff\x01abc")
    # THEN the decoder says so (it once raised a bare ValueError from bytes.index)
    with pytest.raises(cfi.CfiError):
        cfi.decode(fde + cie, 0, False)


@functools.cache
def _cached() -> tuple[str, bytes, tuple[int, bytes], table.UnwindTable]:
    path = str(_fixture_binary())
    built = table.build(path)
    key = table._source_key(path)
    return path, table.encode(built, *key), key, built


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      min_size=1, max_size=4, unique_by=lambda f: f[0]),
       extra=st.binary(max_size=16), cut=st.booleans())
def test_corrupted_cache_files_are_refused(flips: list[tuple[float, int]], extra: bytes,
                                           cut: bool) -> None:
    # GIVEN a valid cache file with bytes changed, cut short or lengthened
    _, good, key, built = _cached()
    assert table.decode(good, *key) == built
    data = bytearray(good)
    positions = {int(where * len(data)) for where, _ in flips}
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    if cut:
        del data[-ROW_CUT:]
    data += extra
    if bytes(data) == good or len(positions) < len(flips):
        return  # two flips undid each other: not a corruption
    # THEN the reader refuses it
    assert table.decode(bytes(data), *key) is None


ROW_CUT = table.ROW.size


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_corrupted_cache_entry_is_rebuilt_not_used(tmp_path_factory: Any, where: float,
                                                   mask: int) -> None:
    # GIVEN a cache folder holding the fixture's table with one byte changed
    path, good, _, built = _cached()
    folder = tmp_path_factory.mktemp("cache")
    bid = build_id_of_path(path)
    assert bid is not None
    bad = bytearray(good)
    bad[int(where * len(bad))] ^= mask
    (folder / f"{bid}.tbl").write_bytes(bytes(bad))
    # WHEN the table is loaded THEN it is the binary's, and the cache file is valid again
    assert table.load(path, bid, folder) == built
    assert (folder / f"{bid}.tbl").read_bytes() == good

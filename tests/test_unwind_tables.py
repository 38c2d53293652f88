"""Unwind tables: the CFI decoder against readelf, and the per-build-id cache."""

from __future__ import annotations

import bisect
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bee_contract.buildid import build_id_of_path
from bee_record.unwind import cfi, table

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
PYTHON = "/usr/bin/python3.11"


def readelf_rules(path: str) -> list[tuple[int, tuple[int, ...]]]:
    """(pc, expected rule) for every row `readelf --debug-dump=frames-interp` prints."""
    if shutil.which("readelf") is None:
        pytest.fail("readelf (binutils) is the oracle of the CFI decoder")
    # (readelf exits 1 over warnings about other debug sections; its frame dump is whole)
    text = subprocess.run(["readelf", "--debug-dump=frames-interp", path], check=False,
                          capture_output=True, text=True).stdout
    out = []
    cols: list[str] = []
    for line in text.splitlines():
        if "LOC" in line and "CFA" in line:
            cols = line.split()
            continue
        m = re.match(r"^([0-9a-f]{16}) (.*)", line)
        if not m or not cols or "(" in m.group(2):  # skip rows with register-rule columns
            continue
        pc = int(m.group(1), 16)
        row = dict(zip(cols[1:], m.group(2).split(), strict=False))
        cfa, rbp, ra = row["CFA"], row.get("rbp", "u"), row.get("ra")
        if pc == 0 or cfa == "exp":
            continue
        saved = int(rbp[1:]) if rbp.startswith("c") else 0
        if ra == "u":
            out.append((pc, (cfi.KIND_END,)))
        elif cfa[:4] in ("rsp+", "rbp+") and int(cfa[4:]) % 8 == 0:
            kind = cfi.KIND_CFA_RSP if cfa.startswith("rsp") else cfi.KIND_CFA_RBP
            out.append((pc, (kind, int(cfa[4:]), saved)))
    return out


@pytest.mark.parametrize("path", [LIBC, PYTHON])
def test_rows_agree_with_readelf(path: str) -> None:
    # GIVEN a Debian binary's .eh_frame
    built = table.build(path)
    rows = [table.ROW.unpack_from(built.rows, i * table.ROW.size) for i in range(built.count)]
    pcs = [r[0] for r in rows]
    expected = readelf_rules(path)
    assert len(expected) > 10000
    # THEN every row readelf prints is the rule in effect at its address
    wrong = []
    for pc, rule in expected:
        _, cfa8, kind, extra = rows[bisect.bisect_right(pcs, pc) - 1]
        got = (kind,) if rule[0] == cfi.KIND_END else (kind, cfa8 * 8, extra * 8)
        if got != rule:
            wrong.append((hex(pc), rule, got))
    assert not wrong, wrong[:5]


def test_plt_and_signal_rules_are_recognised() -> None:
    # GIVEN libc: its PLT has the standard CFA expression, __restore_rt an 'S' CIE
    built = table.build(LIBC)
    kinds = {table.ROW.unpack_from(built.rows, i * table.ROW.size)[2]
             for i in range(built.count)}
    # THEN both appear as their own row kinds
    assert {cfi.KIND_PLT, cfi.KIND_SIGNAL, cfi.KIND_END} <= kinds


def test_cache_is_used_verified_and_rebuilt(tmp_path: Path) -> None:
    # GIVEN a table built once into an empty cache
    bid = build_id_of_path(LIBC)
    first = table.load(LIBC, bid, tmp_path)
    cached = tmp_path / f"{bid}.tbl"
    assert cached.stat().st_size > first.count * table.ROW.size
    # WHEN the cache file is corrupted
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF
    cached.write_bytes(bytes(data))
    # THEN it is not used (checksum) but rebuilt, giving the same rows
    assert table.decode(bytes(data), *table._source_key(LIBC)) is None
    again = table.load(LIBC, bid, tmp_path)
    assert again.rows == first.rows
    assert table.decode(cached.read_bytes(), *table._source_key(LIBC)) == again


def test_not_elf_is_a_table_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"#!/bin/sh\necho hi\n" * 10)
    with pytest.raises(table.TableError):
        table.build(str(bogus))

"""atheris target: the CFI decoder (.eh_frame, .debug_frame), row packing and the reader of
cached unwind tables.

    .venv/bin/python fuzz/fuzz_unwind.py seed CORPUS_DIR   # real sections + a cache file
    .venv/bin/python fuzz/fuzz_unwind.py -atheris_runs=200000 CORPUS_DIR

The first byte picks the parser: 0 .eh_frame, 1 .debug_frame, 2 a cache file. Findings:
anything but CfiError/TableError escaping, more rows than the section has bytes, or a cache
file accepted that is not byte for byte the encoding of what it gave.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from pathlib import Path

import atheris
from atheris_main import run

with atheris.instrument_imports():
    from bee_contract.elf import ElfImage
    from bee_record.unwind import cfi, table

_SIZE = 12345
_HASH = hashlib.blake2b(b"fuzz", digest_size=16).digest()


def one_input(data: bytes) -> None:
    """Decode one input as CFI or as a cache file."""
    if not data:
        return
    mode, body = data[0] % 3, data[1:]
    if mode == 2:
        got = table.decode(body, _SIZE, _HASH)
        if got is not None and table.encode(got, _SIZE, _HASH) != body:
            raise AssertionError("a cache file that is no table's encoding was accepted")
        return
    try:
        rows = cfi.decode(body, 0x1000, mode == 0)
    except cfi.CfiError:
        return
    if len(rows) > len(body):
        raise AssertionError(f"{len(rows)} rows from {len(body)} bytes")
    with contextlib.suppress(table.TableError):
        table.pack(rows)


def seed(folder: Path) -> None:
    """Write seeds: the start of libc's .eh_frame, python3's, and a valid cache file."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/python3.11"):
        with ElfImage.open(path) as image:
            section = image.section(".eh_frame")
            assert section is not None
            data = bytes(image.section_bytes(section))
        cut = 0
        while cut < 4096:
            cut += 4 + struct.unpack_from("<I", data, cut)[0]
        (folder / f"eh-{Path(path).name}").write_bytes(b"\0" + data[:cut])
    rows = [(0x1000 + 16 * i, cfi.KIND_CFA_RSP, 8 * (i + 1), -16, 0) for i in range(16)]
    small = table.UnwindTable(table.ARCH_X86_64, ((0, 0, 0x1000),), table.pack(rows))
    (folder / "cache").write_bytes(b"\2" + table.encode(small, _SIZE, _HASH))


if __name__ == "__main__":
    run(one_input, seed)

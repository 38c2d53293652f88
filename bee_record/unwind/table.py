"""Compact unwind tables of one binary, built from its CFI and cached per build-id.

A table is the binary's PT_LOAD segments (to turn a process address into an ELF virtual
address) and its rows packed as the BPF program reads them (8 bytes each, see ROW):
`u32 pc` (ELF virtual address where the row starts), `u16 cfa_off / 8`, `u8 kind`,
`s8 rbp_off / 8` (for KIND_PLT: the threshold). Tables are cached in the `unwind/` folder
of `bee_record.cachedir` (`/var/cache/bee/unwind/` for root) as `BUILDID.tbl`, under that
folder's rules; a cached table is used only when its header version, the source file's
size and a hash of its first 64 KiB, and the checksum of the payload all match.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from bee_contract.buildid import valid_build_id
from bee_contract.elf import PT_LOAD, SHT_NOBITS, ElfImage
from bee_contract.errors import ElfError
from bee_contract.safeopen import open_regular
from bee_record import cachedir
from bee_record.unwind import cfi

#: One row as the BPF program reads it.
ROW = struct.Struct("<IHBb")
_MAGIC = b"BEEUNWT\0"
_VERSION = 1
_HEAD = struct.Struct("<8sIHHQ16sII16s")
_LOAD = struct.Struct("<QQQ")
_HEAD_BYTES = 64 << 10
_MAX_ROWS = 1 << 24
ARCH_X86_64 = "x86_64"
EM_X86_64 = 62
_MAX_SECTION = 512 << 20
_MAX_LOADS = 256
#: The largest cache file a table can make.
MAX_CACHE_BYTES = _HEAD.size + _MAX_LOADS * _LOAD.size + _MAX_ROWS * ROW.size


class TableError(ValueError):
    """The binary has no usable unwind information."""


@dataclass(frozen=True, slots=True)
class UnwindTable:
    """Rows of one binary plus the segments that map addresses to its virtual addresses."""

    arch: str
    loads: tuple[tuple[int, int, int], ...]  # (file offset, vaddr, file size) of PT_LOADs
    rows: bytes  # packed ROW records sorted by pc

    @property
    def count(self) -> int:
        """Number of rows."""
        return len(self.rows) // ROW.size

    def vaddr_bias(self, start: int, offset: int) -> int | None:
        """Add this to an address of a mapping (start, file offset) to get a vaddr."""
        for p_offset, p_vaddr, filesz in self.loads:
            if p_offset <= offset < p_offset + max(filesz, 1):
                return p_vaddr + offset - p_offset - start
        return None


def pack(rows: list[cfi.Row]) -> bytes:
    """Pack decoded rows (pcs must fit in 32 bits) into ROW records."""
    out = bytearray(len(rows) * ROW.size)
    pack_into = ROW.pack_into
    pos = 0
    for pc, kind, cfa_off, rbp_off, aux in rows:
        if pc >> 32:
            raise TableError("addresses above 4 GiB are not supported")
        extra = aux if kind == cfi.KIND_PLT else rbp_off >> 3
        pack_into(out, pos, pc, cfa_off >> 3, kind, extra)
        pos += ROW.size
    return bytes(out)


def _cfi_of(image: ElfImage) -> tuple[bytes, int, bool, tuple[tuple[int, int, int], ...]]:
    """(.eh_frame or .debug_frame bytes, its address, is .eh_frame, PT_LOADs) of an ELF."""
    if not image.is_64 or not image.little_endian:
        raise TableError("not a 64-bit little-endian ELF file")
    if image.machine != EM_X86_64:
        raise TableError("only x86-64 binaries are unwound")
    section = image.section(".eh_frame")
    eh = True
    if section is None or section.size == 0 or section.sh_type == SHT_NOBITS:
        section, eh = image.section(".debug_frame"), False
    if section is None or section.sh_type == SHT_NOBITS or section.size == 0:
        raise TableError("no .eh_frame or .debug_frame")
    if section.size > _MAX_SECTION:
        raise TableError("call-frame information too large")
    loads = tuple((g.offset, g.vaddr, g.filesz) for g in image.segments if g.p_type == PT_LOAD)
    return bytes(image.section_bytes(section)), section.addr, eh, loads


def build(path: str) -> UnwindTable:
    """Decode the .eh_frame (else .debug_frame) of the ELF file at `path`."""
    try:
        # the target controls `path`: ElfImage.open refuses FIFOs, devices, /proc files
        with ElfImage.open(path) as image:
            data, addr, eh, loads = _cfi_of(image)
    except ElfError as exc:
        raise TableError(str(exc)) from None
    try:
        rows = cfi.decode(data, addr, eh)
    except cfi.CfiError as exc:
        raise TableError(str(exc)) from None
    if len(rows) > _MAX_ROWS:
        raise TableError("too many rows")
    return UnwindTable(ARCH_X86_64, loads, pack(rows))


def cache_dir() -> Path:
    """Where tables are cached: the `unwind` folder of `bee_record.cachedir`."""
    return cachedir.cache_dir("unwind")


def _source_key(path: str) -> tuple[int, bytes]:
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(_HEAD_BYTES)
    return size, hashlib.blake2b(head, digest_size=16).digest()


def _payload(table: UnwindTable) -> bytes:
    return b"".join(_LOAD.pack(*ld) for ld in table.loads) + table.rows


def encode(table: UnwindTable, size: int, head_hash: bytes) -> bytes:
    """The cache file for `table` built from a source of this size and head hash."""
    payload = _payload(table)
    checksum = hashlib.blake2b(payload, digest_size=16).digest()
    head = _HEAD.pack(_MAGIC, _VERSION, 62, 0, size, head_hash, len(table.loads),
                      table.count, checksum)
    return head + payload


def decode(data: bytes, size: int, head_hash: bytes) -> UnwindTable | None:
    """The table in a cache file, or None when stale, foreign or corrupt.

    Every header field is checked and the payload's checksum: any changed byte is refused.
    """
    if len(data) < _HEAD.size:
        return None
    magic, version, machine, reserved, src_size, src_hash, nloads, nrows, checksum = \
        _HEAD.unpack_from(data)
    if magic != _MAGIC or version != _VERSION or machine != 62 or reserved != 0:
        return None
    if src_size != size or src_hash != head_hash:
        return None
    payload = data[_HEAD.size:]
    if nloads > _MAX_LOADS or len(payload) != nloads * _LOAD.size + nrows * ROW.size:
        return None
    if hashlib.blake2b(payload, digest_size=16).digest() != checksum:
        return None
    loads = tuple(_LOAD.unpack_from(payload, i * _LOAD.size) for i in range(nloads))
    return UnwindTable(ARCH_X86_64, loads, payload[nloads * _LOAD.size:])


def load(path: str, build_id: str | None, folder: Path | None = None) -> UnwindTable:
    """The table of the binary at `path`: from the cache when valid, else built (and cached).

    Binaries without a valid build-id are built every time, never cached.
    """
    try:
        size, head_hash = _source_key(path)
    except OSError as exc:
        raise TableError(exc.strerror or str(exc)) from None
    if not valid_build_id(build_id):
        return build(path)
    cache = (folder or cache_dir()) / f"{build_id}.tbl"
    data = cachedir.read_entry(cache, MAX_CACHE_BYTES)
    cached = decode(data, size, head_hash) if data is not None else None
    if cached is not None:
        return cached
    table = build(path)
    if len(table.loads) <= _MAX_LOADS:
        cachedir.write_entry(cache, encode(table, size, head_hash))
    return table

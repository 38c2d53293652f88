"""The tables bee symbolizes one debug file with, and their on-disk cache.

:func:`bee_report.dwarf.lines.build` turns a debug file into :class:`Tables`: the SymCache (format
v9) that Sentry's ``symbolic`` (Rust, gimli) makes from the DWARF (read by
:class:`bee_report.dwarf.symcache.SymCacheView`), plus the ELF symbol-table facts
(:func:`bee_report.dwarf.symbol_facts.symbol_tables`) needed to print names the way
``addr2line`` does (the rules are in :mod:`bee_report.dwarf.lines`). Every table is a flat
little-endian buffer, so a cached entry is used straight from ``mmap``. This module holds
:class:`Tables`, the helpers that build its u32/u64 buffers, and
the cache file format (:func:`serialize`/:func:`deserialize`, :func:`load`/:func:`store`).

On-disk layout (integers little-endian, sections 8-byte aligned)::

    header   MAGIC, format version, section count, CRC-32 of the rest, flags,
             load address, build-id (length + 128 ASCII bytes)
    table    (offset, length) per section, in the order of ``_SECTIONS``
    sections the buffers of :class:`Tables`

An entry that is truncated, has flipped bytes (CRC), another magic, format version or
build-id reads as absent, and the caller rebuilds it. Writes are atomic
(:mod:`bee_contract.atomic`); a cache that cannot be written is skipped.
"""

from __future__ import annotations

import bisect
import mmap
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from bee_contract.atomic import write_atomic
from bee_contract.errors import BeeError
from bee_contract.safeopen import open_regular

FORMAT_VERSION = 1
MAGIC = b"BEEDWRF\x00"
NONE = 0xFFFFFFFF
"""The "no index" value of the u32 tables (the SymCache's own convention too)."""

_HEADER = struct.Struct("<8sIIIIQB128s")
_ENTRY = struct.Struct("<QQ")
_SECTIONS = (
    ("symcache", "B"),
    ("strings", "B"),
    ("name_offsets", "I"),
    ("fn_override", "I"),
    ("sec_start", "Q"),
    ("sec_end", "Q"),
    ("sec_lo", "I"),
    ("sym_start", "Q"),
    ("sym_name", "I"),
    ("sym_file", "I"),
    ("range_limit", "I"),
)
_FLAG_DWARF5 = 1



def cache_file(cache_dir: Path, build_id: str, source: str) -> Path:
    """The cache entry of ``build_id`` (validated by the caller) built from the debug file
    ``source`` names (:func:`bee_report.find.cachedir.source_key`) under ``cache_dir``."""
    return cache_dir / "dwarf" / f"{build_id}.{source}.v{FORMAT_VERSION}.beedwarf"


@dataclass(frozen=True, slots=True)
class Tables:
    """Lookup tables of one debug file.

    ``symcache`` is symbolic's SymCache v9 (addresses relative to ``load_address``).
    Extra name ``i`` is ``strings[name_offsets[i]:name_offsets[i+1]]``. ``fn_override[f]``
    is the extra name to print for SymCache function ``f`` as outermost frame, or NONE.
    ``sec_*`` are the allocated sections sorted by address; the ELF symbols addr2line can
    pick in section ``s`` are ``sym_*[sec_lo[s]:sec_lo[s+1]]``, sorted by start, one per
    distinct start; ``sym_file`` is their STT_FILE name or NONE. ``range_limit[r]`` is where
    SymCache range ``r`` stops being DWARF (relative; the first FUNC symbol inside it, as
    SymCache ranges have no end of their own) or NONE. ``dwarf5`` says how to read
    directory index 0.
    """

    symcache: memoryview
    strings: memoryview
    name_offsets: memoryview
    fn_override: memoryview
    sec_start: memoryview
    sec_end: memoryview
    sec_lo: memoryview
    sym_start: memoryview
    sym_name: memoryview
    sym_file: memoryview
    range_limit: memoryview
    load_address: int
    dwarf5: bool

    def name(self, index: int) -> bytes:
        """Extra name ``index``."""
        return bytes(self.strings[self.name_offsets[index] : self.name_offsets[index + 1]])

    def symbol_at(self, vaddr: int) -> int | None:
        """Index of the ELF symbol addr2line names ``vaddr`` after, or None."""
        s = bisect.bisect_right(self.sec_start, vaddr) - 1
        if s < 0 or vaddr >= self.sec_end[s]:
            return None
        lo, hi = self.sec_lo[s], self.sec_lo[s + 1]
        i = bisect.bisect_right(self.sym_start, vaddr, lo, hi) - 1
        return i if i >= lo else None


def u32(values: list[int]) -> memoryview:
    """Little-endian u32 buffer of `values`, viewed as integers."""
    return memoryview(struct.pack(f"<{len(values)}I", *values)).cast("I")


def u64(values: list[int]) -> memoryview:
    """Little-endian u64 buffer of `values`, viewed as integers."""
    return memoryview(struct.pack(f"<{len(values)}Q", *values)).cast("Q")


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def serialize(tables: Tables, build_id: str) -> bytes:
    """The on-disk form of ``tables`` for ``build_id``."""
    blobs = [bytes(getattr(tables, name).cast("B")) for name, _ in _SECTIONS]
    start = _pad8(_HEADER.size) + _pad8(_ENTRY.size * len(blobs))
    entries, body = bytearray(), bytearray()
    for blob in blobs:
        entries += _ENTRY.pack(start + len(body), len(blob))
        body += blob + bytes(_pad8(len(blob)) - len(blob))
    rest = bytes(entries.ljust(start - _pad8(_HEADER.size), b"\0") + body)
    flags = _FLAG_DWARF5 if tables.dwarf5 else 0
    id_raw = build_id.encode("ascii")
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(blobs), zlib.crc32(rest), flags,
                          tables.load_address, len(id_raw), id_raw)  # fmt: skip
    return header.ljust(_pad8(_HEADER.size), b"\0") + rest


def deserialize(data: memoryview, build_id: str) -> Tables | None:
    """Tables from a cache file's bytes, or None if it is not a valid entry for ``build_id``."""
    head = _pad8(_HEADER.size)
    if len(data) < head:
        return None
    magic, version, count, crc, flags, load, id_len, id_raw = _HEADER.unpack_from(data)
    if (magic, version, count) != (MAGIC, FORMAT_VERSION, len(_SECTIONS)):
        return None
    if id_raw[:id_len] != build_id.encode("ascii") or zlib.crc32(data[head:]) != crc:
        return None
    views: dict[str, memoryview] = {}
    for i, (name, fmt) in enumerate(_SECTIONS):
        off, length = _ENTRY.unpack_from(data, head + i * _ENTRY.size)
        if off + length > len(data) or off % 8 or length % struct.calcsize(fmt):
            return None
        view = data[off : off + length]
        views[name] = view.cast("Q") if fmt == "Q" else view.cast("I") if fmt == "I" else view
    return Tables(**views, load_address=load, dwarf5=bool(flags & _FLAG_DWARF5))


def load(cache_dir: Path, build_id: str, source: str) -> Tables | None:
    """The cached tables of ``build_id`` from ``source``, or None when absent, foreign or
    damaged."""
    try:  # a link, FIFO or device in the cache folder is not bee's: not followed, no block
        with open_regular(cache_file(cache_dir, build_id, source), follow=False) as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, BeeError):
        return None
    return deserialize(memoryview(mapped), build_id)


def store(cache_dir: Path, build_id: str, source: str, tables: Tables) -> None:
    """Write ``tables`` as the entry of ``build_id`` from ``source``, atomically; errors are
    ignored."""
    path = cache_file(cache_dir, build_id, source)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, serialize(tables, build_id), sync=False)
    except (OSError, BeeError):
        pass

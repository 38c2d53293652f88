"""Contents of ELF sections: decompression, .gnu_debuglink, MiniDebugInfo.

:func:`section_contents` undoes SHF_COMPRESSED (zlib or zstd; zstd needs the optional
``zstandard`` module) and legacy ``.zdebug`` ("ZLIB" + big-endian size) compression, never
producing more than :data:`MAX_SECTION_BYTES`. :func:`parse_debuglink` reads ``.gnu_debuglink``
and :func:`unpack_debugdata` unpacks the xz stream of ``.gnu_debugdata``. Problems are
reported through the caller's error factory (:meth:`bee_report.elf.elffile.ElfFile._error`), so
every message names the file and no zlib/zstd/lzma exception escapes.
"""

from __future__ import annotations

import lzma
import struct
import zlib
from typing import Final

from bee_contract.elf import MAX_SECTION_BYTES, ElfLayout, ErrorFactory, Section

__all__ = [
    "ELFCOMPRESS_ZLIB",
    "ELFCOMPRESS_ZSTD",
    "MAX_DEBUGDATA_BYTES",
    "SHF_COMPRESSED",
    "parse_debuglink",
    "section_contents",
    "unpack_debugdata",
]

SHF_COMPRESSED: Final = 0x800
ELFCOMPRESS_ZLIB: Final = 1
ELFCOMPRESS_ZSTD: Final = 2

_XZ_MEMLIMIT: Final = 256 << 20  # refuse xz streams needing a huge dictionary

MAX_DEBUGDATA_BYTES: Final = 64 << 20
"""Largest MiniDebugInfo ELF (it holds a symbol table: typically well under 1 MiB)."""


def section_contents(section: Section, raw: bytes, lay: ElfLayout, error: ErrorFactory) -> bytes:
    """``raw`` (the bytes of ``section`` in the file), decompressed if SHF_COMPRESSED (or
    legacy .zdebug)."""
    if section.flags & SHF_COMPRESSED:
        return _decompress_elf(section, raw, lay, error)
    if section.name.startswith(".zdebug") and raw[:4] == b"ZLIB":
        if len(raw) < 12:
            raise error(f"section {section.name}: truncated .zdebug header")
        (size,) = struct.unpack_from(">Q", raw, 4)
        return _inflate(section, raw[12:], size, error)
    return raw


def _decompress_elf(section: Section, raw: bytes, lay: ElfLayout, error: ErrorFactory) -> bytes:
    chdr = lay.chdr
    if len(raw) < chdr.size:
        raise error(f"section {section.name}: truncated compression header")
    fields = chdr.unpack_from(raw, 0)
    ch_type, ch_size = fields[0], fields[2 if lay.is_64 else 1]
    payload = raw[chdr.size :]
    if ch_type == ELFCOMPRESS_ZLIB:
        return _inflate(section, payload, ch_size, error)
    if ch_type == ELFCOMPRESS_ZSTD:
        return _unzstd(section, payload, ch_size, error)
    raise error(f"section {section.name}: unknown compression type {ch_type}")


def _inflate(section: Section, payload: bytes, size: int, error: ErrorFactory) -> bytes:
    if size > MAX_SECTION_BYTES:
        raise error(f"section {section.name}: decompressed size {size} is too large "
                    f"(limit {MAX_SECTION_BYTES >> 30} GiB)")
    try:
        out = zlib.decompressobj().decompress(payload, size + 1)
    except zlib.error as exc:
        raise error(f"section {section.name}: bad zlib data ({exc})") from exc
    if len(out) != size:
        raise error(f"section {section.name}: decompressed to {len(out)} bytes, header says {size}")
    return out


def _unzstd(section: Section, payload: bytes, size: int, error: ErrorFactory) -> bytes:
    try:
        import zstandard
    except ImportError:
        raise error(
            f"section {section.name}: zstd compression unsupported "
            "(the 'zstandard' module is not installed)"
        ) from None
    if size > MAX_SECTION_BYTES:
        raise error(f"section {section.name}: decompressed size {size} is too large "
                    f"(limit {MAX_SECTION_BYTES >> 30} GiB)")
    chunks: list[bytes] = []
    total = 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(payload)
        while total <= size:  # bounded: never more than size + 1 bytes
            chunk = bytes(reader.read(min(1 << 20, size + 1 - total)))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except zstandard.ZstdError as exc:
        raise error(f"section {section.name}: bad zstd data ({exc})") from exc
    out = b"".join(chunks)
    if len(out) != size:
        raise error(f"section {section.name}: decompressed to {len(out)} bytes, header says {size}")
    return out


def parse_debuglink(data: bytes, lay: ElfLayout, error: ErrorFactory) -> tuple[str, int]:
    """(file name, CRC32) from the contents of a .gnu_debuglink section."""
    nul = data.find(b"\0")
    crc_off = (nul + 4) & ~3
    if nul <= 0 or crc_off + 4 > len(data):
        raise error("malformed .gnu_debuglink section")
    name = data[:nul].decode("utf-8", "backslashreplace")
    return name, lay.u32.unpack_from(data, crc_off)[0]


def unpack_debugdata(packed: bytes, error: ErrorFactory) -> bytes:
    """The ELF image in the xz stream ``packed`` (the contents of .gnu_debugdata)."""
    dec = lzma.LZMADecompressor(memlimit=_XZ_MEMLIMIT)
    try:
        data = dec.decompress(packed, max_length=MAX_DEBUGDATA_BYTES + 1)
    except lzma.LZMAError as exc:
        raise error(f".gnu_debugdata: bad xz data ({exc})") from exc
    if len(data) > MAX_DEBUGDATA_BYTES:
        raise error(f".gnu_debugdata: decompresses to more than {MAX_DEBUGDATA_BYTES >> 20} MiB")
    if not dec.eof:
        raise error(".gnu_debugdata: truncated xz data")
    return data

"""Read GNU build-ids on the target: ELF notes only, no symbol tables.

The reader looks at the ELF header and the PT_NOTE program headers (falling back to
SHT_NOTE sections), reading a few kilobytes at most. Anything malformed gives None:
a binary without a readable build-id is still recorded, just matched by path later.
"""

from __future__ import annotations

import re
import struct
from typing import BinaryIO

from bee_contract.safeopen import open_regular

NT_GNU_BUILD_ID = 3
_BUILD_ID = re.compile(r"[0-9a-f]{2,128}")
PT_NOTE = 4
SHT_NOTE = 7
_MAX_NOTES_BYTES = 1 << 16
_MAX_HEADERS = 4096


def valid_build_id(build_id: str | None) -> bool:
    """True when `build_id` is lowercase hex, 2..128 digits: safe in a path or a URL.

    Build-ids come from untrusted recordings; every use in a path is checked with this.
    """
    return build_id is not None and _BUILD_ID.fullmatch(build_id) is not None


def build_id_of_file(f: BinaryIO) -> str | None:
    """Return the lowercase hex GNU build-id of an open ELF file, or None."""
    try:
        return _read(f)
    except (OSError, struct.error, ValueError, OverflowError):
        return None


def build_id_of_path(path: str) -> str | None:
    """Open `path` and return its build-id, or None if unreadable, absent or not a plain
    regular file (FIFOs, devices and kernel pseudo files are never opened: see safeopen)."""
    try:
        with open_regular(path) as f:
            return build_id_of_file(f)
    except OSError:
        return None


def parse_notes(data: bytes, little: bool) -> str | None:
    """Find NT_GNU_BUILD_ID in a block of ELF notes."""
    e = "<" if little else ">"
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(e + "III", data, pos)
        pos += 12
        name_end = pos + namesz
        desc_start = pos + ((namesz + 3) & ~3)
        desc_end = desc_start + descsz
        if desc_end > len(data):
            return None
        if ntype == NT_GNU_BUILD_ID and data[pos:name_end] == b"GNU\0" and 2 <= descsz <= 64:
            return data[desc_start:desc_end].hex()
        pos = desc_start + ((descsz + 3) & ~3)
    return None


def _read(f: BinaryIO) -> str | None:
    ident = f.read(64)
    if len(ident) < 52 or ident[:4] != b"\x7fELF":
        return None
    is64 = ident[4] == 2
    little = ident[5] == 1
    e = "<" if little else ">"
    if is64:
        phoff, shoff = struct.unpack_from(e + "QQ", ident, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", ident, 54)
    else:
        phoff, shoff = struct.unpack_from(e + "II", ident, 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(e + "HHHH", ident, 42)
    if phnum > _MAX_HEADERS or shnum > _MAX_HEADERS:
        return None
    for off, size in _note_ranges(f, e, is64, phoff, phentsize, phnum, PT_NOTE, True):
        found = _notes_at(f, off, size, little)
        if found:
            return found
    for off, size in _note_ranges(f, e, is64, shoff, shentsize, shnum, SHT_NOTE, False):
        found = _notes_at(f, off, size, little)
        if found:
            return found
    return None


def _note_ranges(
    f: BinaryIO, e: str, is64: bool, table: int, entsize: int, count: int, kind: int,
    segments: bool,
) -> list[tuple[int, int]]:
    if not table or not count or entsize < 32:
        return []
    f.seek(table)
    raw = f.read(entsize * count)
    out = []
    for i in range(len(raw) // entsize):
        base = i * entsize
        if segments:
            if is64:
                p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(e + "IIQQQQ", raw, base)
            else:
                p_type, p_offset, _, _, p_filesz = struct.unpack_from(e + "IIIII", raw, base)
            if p_type == kind:
                out.append((p_offset, p_filesz))
        else:
            if is64:
                _, sh_type, _, _, sh_offset, sh_size = struct.unpack_from(e + "IIQQQQ", raw, base)
            else:
                _, sh_type, _, _, sh_offset, sh_size = struct.unpack_from(e + "IIIIII", raw, base)
            if sh_type == kind:
                out.append((sh_offset, sh_size))
    return out


def _notes_at(f: BinaryIO, offset: int, size: int, little: bool) -> str | None:
    if size <= 0 or size > _MAX_NOTES_BYTES:
        return None
    f.seek(offset)
    return parse_notes(f.read(size), little)

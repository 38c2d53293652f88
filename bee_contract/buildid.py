"""GNU build-ids: what a valid one looks like, where it is in an ELF file, and where the
debug file of one lives. One copy of each rule, for both stages.

Reading uses :mod:`bee_contract.elf` (a mapped file, headers and note areas only; no
symbol tables). Anything malformed gives None: a binary without a readable build-id is
still recorded, just matched by path later.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bee_contract.elf import ElfImage, Note, iter_notes
from bee_contract.errors import ElfError

NT_GNU_BUILD_ID = 3
_BUILD_ID = re.compile(r"[0-9a-f]{2,128}")

DEBUG_ROOTS: tuple[Path, ...] = (Path("/usr/lib/debug"),)
"""Where distributions install separate debug files (`.build-id/xx/rest.debug` below)."""


def valid_build_id(build_id: str | None) -> bool:
    """True when `build_id` is lowercase hex, 2..128 digits: safe in a path or a URL.

    Build-ids come from untrusted recordings; every use in a path is checked with this.
    """
    return build_id is not None and _BUILD_ID.fullmatch(build_id) is not None


def build_id_tree_path(root: Path, build_id: str, suffix: str = "") -> Path:
    """`ROOT/.build-id/xx/rest[SUFFIX]`: where a binary (suffix "") or its debug file
    (".debug") is found by build-id. Check the id with :func:`valid_build_id` first."""
    return root / ".build-id" / build_id[:2] / f"{build_id[2:]}{suffix}"


def _first_build_id(notes: Iterator[Note]) -> str | None:
    for note in notes:
        if note.n_type == NT_GNU_BUILD_ID and note.name == b"GNU":
            found = note.desc.hex()
            return found if valid_build_id(found) else None
    return None


def build_id_in_notes(data: bytes, little_endian: bool) -> str | None:
    """The hex NT_GNU_BUILD_ID descriptor in a block of ELF notes, or None."""
    return _first_build_id(iter_notes(data, little_endian))


def build_id_of_image(image: ElfImage) -> str | None:
    """The build-id in an ELF image's note sections or segments, or None."""
    return _first_build_id(image.notes())


def build_id_of_file(f: BinaryIO) -> str | None:
    """Return the lowercase hex GNU build-id of an open ELF file, or None."""
    try:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # empty, or not a regular file
        return None
    try:
        name = getattr(f, "name", None)
        with ElfImage(Path(name if isinstance(name, str) else "<file>"), buf) as image:
            return build_id_of_image(image)
    except ElfError:
        return None


def build_id_of_path(path: str) -> str | None:
    """Open `path` and return its build-id, or None if unreadable, absent or not a plain
    regular file (FIFOs, devices and kernel pseudo files are never opened: see safeopen)."""
    try:
        with ElfImage.open(path) as image:  # through safeopen.open_regular
            return build_id_of_image(image)
    except ElfError:
        return None

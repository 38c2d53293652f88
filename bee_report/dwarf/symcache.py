"""Read-only view of the SymCache v9 buffer that Sentry's ``symbolic`` builds from DWARF.

The SymCache maps address ranges to (file, line, function, inlined-into) locations with
the inline tree resolved; :class:`SymCacheView` exposes its tables as ``memoryview`` casts
of the buffer (which may be a cache entry straight from ``mmap``) and decodes its
strings. :func:`bee_report.dwarf.lines.build` makes the buffer;
:class:`bee_report.dwarf.lines.DebugInfo` reads it.
"""

from __future__ import annotations

import struct
from pathlib import Path

from bee_contract.errors import DebugInfoError

__all__ = ["SymCacheView"]


class SymCacheView:
    """Read-only view of a symbolic SymCache, format version 9 (symbolic 12-13)."""

    def __init__(self, blob: memoryview, where: Path) -> None:
        if len(blob) < 80 or bytes(blob[:4]) != b"SYMC":
            raise DebugInfoError(f"{where}: symbolic produced no SymCache")
        version, nfiles, nfuncs, nlocs, nranges, nstr = struct.unpack_from("<I36x5I", blob, 4)
        if version != 9:
            raise DebugInfoError(f"{where}: unsupported SymCache format v{version} (need v9)")
        funcs = (80 + 24 * nfiles + 7) & ~7
        locs = (funcs + 16 * nfuncs + 7) & ~7
        ranges = (locs + 16 * nlocs + 7) & ~7
        strings = (ranges + 4 * nranges + 7) & ~7
        if strings + nstr > len(blob) or nranges > nlocs:
            raise DebugInfoError(f"{where}: truncated SymCache")
        self.function_count = nfuncs
        self.files = blob[80 : 80 + 24 * nfiles].cast("I")  # comp_dir, directory, name, ...
        self.functions = blob[funcs : funcs + 16 * nfuncs].cast("I")  # name, -, entry, lang
        self.locations = blob[locs : locs + 16 * nlocs].cast("I")  # file, line, func, caller
        self.ranges = blob[ranges : ranges + 4 * nranges].cast("I")
        self.range_base = nlocs - nranges
        self.strings = blob[strings : strings + nstr]

    def string(self, offset: int) -> str | None:
        """The string at ``offset`` (LEB128 length + UTF-8), None for NONE."""
        if offset >= len(self.strings):
            return None
        length = shift = 0
        while True:
            byte = self.strings[offset]
            offset += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        return bytes(self.strings[offset : offset + length]).decode("utf-8", "replace")

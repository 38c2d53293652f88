"""Resolved frames of a binary's addresses, kept between reports (the warm report's cache).

`$XDG_CACHE_HOME/bee/frames/<build-id>.<source>.<dwarf|names>.v1.msgpack` holds, for each
ELF virtual address of one binary that a report has symbolized, what the symbol table and
DWARF said of it: the demangled function symbol (or none) and the chain of DWARF frames,
outermost first, as (function, inlined, file, line). A later report looks its addresses up
here first and opens the binary's symbol and DWARF tables only for addresses it lacks.

`<source>` is :func:`bee_report.find.cachedir.source_key` of the binary and its debug file,
as for the symbol-table and DWARF caches: an entry never answers for another file with
the same build-id, and a debug file installed later is another source, hence another
entry. The file is trusted no more than any cache entry: it is read only up to
:data:`MAX_FILE_BYTES`; one that is damaged, of another version or for another build-id or
source is ignored and rewritten, one that is not a regular file (a link, a FIFO) is ignored
and left alone; each entry is checked when it is used, and one of the wrong shape is
computed again. At most :data:`MAX_ENTRIES` addresses are kept per
binary.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import msgpack

from bee_contract.atomic import write_atomic
from bee_contract.buildid import valid_build_id
from bee_contract.errors import BeeError
from bee_contract.safeopen import read_regular

VERSION = 1
#: Addresses kept per binary (beyond them, new addresses are resolved but not kept).
MAX_ENTRIES = 1 << 17
#: A larger file is not read (it was not written by bee).
MAX_FILE_BYTES = 128 << 20
#: DWARF frames kept per address (deeper inline chains are not cached).
MAX_CHAIN = 256

#: One DWARF frame: function (None: unnamed), inlined, file, line.
SourceEntry = tuple[str | None, bool, str | None, int | None]
#: What an address resolved to: the demangled symbol (None: no symbol covers it) and the
#: DWARF frames, outermost first (empty without DWARF).
Resolved = tuple[str | None, tuple[SourceEntry, ...]]


def _path(cache_dir: Path, build_id: str, source: str, dwarf: bool) -> Path:
    kind = "dwarf" if dwarf else "names"
    return cache_dir / "frames" / f"{build_id}.{source}.{kind}.v{VERSION}.msgpack"


def _opt_str(value: object) -> bool:
    return value is None or type(value) is str


def _checked(raw: object) -> Resolved | None:
    """`raw` as a Resolved entry, or None when it has another shape."""
    if type(raw) is not list or len(raw) != 2 or not _opt_str(raw[0]):
        return None
    chain = raw[1]
    if type(chain) is not list or len(chain) > MAX_CHAIN:
        return None
    out: list[SourceEntry] = []
    for frame in chain:
        if type(frame) is not list or len(frame) != 4:
            return None
        function, inlined, file, line = frame
        if (not _opt_str(function) or type(inlined) is not bool or not _opt_str(file)
                or not (line is None or (type(line) is int and 0 <= line < 1 << 32))):
            return None
        out.append((function, inlined, file, line))
    return raw[0], tuple(out)


class FrameCache:
    """The saved frames of one binary (build-id, source files, with or without DWARF)."""

    def __init__(self, path: Path, build_id: str, source: str, dwarf: bool,
                 saved: dict[int, Any]) -> None:
        """Use :meth:`open`."""
        self.path = path
        self._head = {"build_id": build_id, "source": source, "dwarf": dwarf}
        self._saved = saved  # address -> raw entry, checked when used
        self._added: dict[int, Resolved] = {}
        self._dirty = False
        self._writable = True

    @classmethod
    def open(cls, cache_dir: Path | None, build_id: str | None, source: str | None,
             dwarf: bool) -> FrameCache | None:
        """The saved frames of a binary (empty when none are saved yet), or None when it
        cannot be cached (no cache folder, no valid build-id, files not examinable)."""
        if cache_dir is None or build_id is None or not valid_build_id(build_id) or not source:
            return None
        path = _path(cache_dir, build_id, source, dwarf)
        cache = cls(path, build_id, source, dwarf, {})
        cache._saved = cache._read()
        return cache

    def _read(self) -> dict[int, Any]:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return {}
        except OSError:
            self._writable = False
            return {}
        if not stat.S_ISREG(st.st_mode):  # a link, a FIFO...: not bee's, left alone
            self._writable = False
            return {}
        if st.st_size > MAX_FILE_BYTES:  # not written by bee: replaced
            self._dirty = True
            return {}
        try:
            raw = read_regular(self.path, MAX_FILE_BYTES + 1, follow=False,
                               max_size=MAX_FILE_BYTES)
        except (OSError, BeeError):  # replaced meanwhile by something else: left alone
            self._writable = False
            return {}
        try:
            data = msgpack.unpackb(raw, raw=False) if len(raw) <= MAX_FILE_BYTES else None
        except (ValueError, TypeError, msgpack.UnpackException):
            data = None
        if (not isinstance(data, dict) or any(data.get(k) != v for k, v in self._head.items())
                or type(data.get("addresses")) is not list
                or type(data.get("entries")) is not list
                or len(data["addresses"]) != len(data["entries"])
                or len(data["addresses"]) > MAX_ENTRIES
                or not all(type(a) is int for a in data["addresses"])):
            self._dirty = True  # damaged or foreign: written anew
            return {}
        return dict(zip(data["addresses"], data["entries"], strict=True))

    def get(self, vaddr: int) -> Resolved | None:
        """What `vaddr` resolved to when it was saved, or None (not saved, or damaged)."""
        raw = self._saved.get(vaddr)
        if raw is None:
            return self._added.get(vaddr)
        entry = _checked(raw)
        if entry is None:  # damaged: computed again and saved anew
            del self._saved[vaddr]
            self._dirty = True
        return entry

    def add(self, vaddr: int, entry: Resolved) -> None:
        """Keep what `vaddr` resolved to (up to MAX_ENTRIES addresses per binary)."""
        if (len(self._saved) + len(self._added) < MAX_ENTRIES
                and len(entry[1]) <= MAX_CHAIN):
            self._added[vaddr] = entry
            self._dirty = True

    def save(self) -> None:
        """Write the file when something was added or found damaged; failures to write are
        ignored (it is an optimisation)."""
        if not self._dirty or not self._writable:
            return
        addresses = list(self._saved)
        entries: list[Any] = list(self._saved.values())
        for vaddr, (symbol, chain) in self._added.items():
            addresses.append(vaddr)
            entries.append([symbol, [list(f) for f in chain]])
        data = {**self._head, "addresses": addresses, "entries": entries}
        try:
            packed = msgpack.packb(data, use_bin_type=True)
            if len(packed) > MAX_FILE_BYTES:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, packed, sync=False)
        except (OSError, BeeError, ValueError, TypeError):
            return
        self._dirty = False

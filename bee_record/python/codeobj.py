"""Read code objects (names, file, first line, line table) from a live CPython process.

Everything read here is controlled by the recorded process: lengths are capped, string
kinds checked, every read bounded (`ProcessMemory`), and a code object that cannot be
read becomes an unnamed entry rather than an error. `CodeTable` reads each code object
once per process generation and checks its identity again (type, file name and name
pointers, first line) the first time it is seen in each later drain, so a code object
freed and replaced at the same address gets an entry of its own.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from bee_contract.recording import PythonCode
from bee_record.python.detect import PyRuntime
from bee_record.python.layout import PyLayout
from bee_record.python.memory import ProcessMemory

#: Longest qualified name and file name kept (characters).
MAX_NAME = 512
MAX_FILENAME = 4096
#: Longest line table kept (bytes); lines of instructions past it are not known.
MAX_LINETABLE = 1 << 15


def _unknown(address: int) -> PythonCode:
    return PythonCode(address, "", "", 0, b"")


def read_str(mem: ProcessMemory, address: int, layout: PyLayout, cap: int) -> str | None:
    """A compact str object's text (at most `cap` characters), or None."""
    head = mem.read(address, layout.unicode_compact_size)
    if head is None:
        return None
    length = struct.unpack_from("<q", head, layout.unicode_length)[0]
    state = struct.unpack_from("<I", head, layout.unicode_state)[0]
    kind, compact, ascii_ = (state >> 2) & 7, (state >> 5) & 1, (state >> 6) & 1
    if not compact or kind not in (1, 2, 4) or length < 0 or (ascii_ and kind != 1):
        return None
    n = min(length, cap)
    if n == 0:
        return ""
    data_at = address + (layout.unicode_ascii_size if ascii_ else layout.unicode_compact_size)
    data = mem.read(data_at, n * kind)
    if data is None:
        return None
    codec = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind]
    return data.decode(codec, "replace")


def read_bytes(mem: ProcessMemory, address: int, layout: PyLayout, cap: int) -> bytes | None:
    """A bytes object's content (at most `cap` bytes), or None."""
    size = mem.read_u64(address + layout.bytes_size)
    if size is None or size >= 1 << 63:
        return None
    n = min(size, cap)
    if n == 0:
        return b""
    return mem.read(address + layout.bytes_sval, n)


def _head_size(layout: PyLayout) -> int:
    return 8 + max(layout.ob_type, layout.code_filename, layout.code_name,
                   layout.code_qualname, layout.code_firstlineno, layout.code_linetable)


def code_identity(mem: ProcessMemory, address: int, rt: PyRuntime
                  ) -> tuple[bytes, tuple[int, int, int, int, int]] | None:
    """The code object's header and (type, filename, name, qualname, first line), or None."""
    layout = rt.layout
    head = mem.read(address, _head_size(layout))
    if head is None:
        return None

    def ptr(off: int) -> int:
        return int(struct.unpack_from("<Q", head, off)[0]) if off >= 0 else 0

    ident = (ptr(layout.ob_type), ptr(layout.code_filename), ptr(layout.code_name),
             ptr(layout.code_qualname), struct.unpack_from("<i", head, layout.code_firstlineno)[0])
    if rt.code_type and ident[0] != rt.code_type:
        return None  # not (or no longer) a code object
    return head, ident


def read_code(mem: ProcessMemory, address: int, rt: PyRuntime
              ) -> tuple[PythonCode, tuple[int, int, int, int, int] | None]:
    """Read one code object; an unreadable one gives an unnamed entry and no identity."""
    got = code_identity(mem, address, rt)
    if got is None:
        return _unknown(address), None
    head, ident = got
    layout = rt.layout
    _, filename_p, name_p, qualname_p, firstlineno = ident
    name = read_str(mem, qualname_p or name_p, layout, MAX_NAME)
    filename = read_str(mem, filename_p, layout, MAX_FILENAME)
    table_p = int(struct.unpack_from("<Q", head, layout.code_linetable)[0])
    linetable = read_bytes(mem, table_p, layout, MAX_LINETABLE) if table_p else b""
    if name is None or filename is None:
        return _unknown(address), None
    return PythonCode(address, name, filename, max(firstlineno, 0), linetable or b""), ident


@dataclass
class _Known:
    code: PythonCode
    ident: tuple[int, int, int, int, int] | None
    checked: int  # drain number of the last identity check


@dataclass
class CodeTable:
    """The code objects of one process generation, as entries of the recording."""

    pid: int
    runtime: PyRuntime
    entries: list[PythonCode] = field(default_factory=list)
    _index: dict[int, int] = field(default_factory=dict)  # address -> entry (this file)
    _known: dict[int, _Known] = field(default_factory=dict)  # address -> last read
    reads: int = 0

    def index(self, address: int, drain: int) -> int:
        """Entry index of the code object at `address` as seen in drain number `drain`."""
        known = self._known.get(address)
        if known is not None and known.checked != drain:
            mem = ProcessMemory(self.pid)
            got = code_identity(mem, address, self.runtime)
            self.reads += mem.reads
            if got is None or got[1] == known.ident:
                known.checked = drain  # the same object, or unreadable now (process gone)
            else:
                known = None  # replaced by another object at the same address: read it
        if known is None:
            mem = ProcessMemory(self.pid)
            code, ident = read_code(mem, address, self.runtime)
            self.reads += mem.reads
            known = self._known[address] = _Known(code, ident, drain)
            self._index.pop(address, None)
        idx = self._index.get(address)
        if idx is None or self.entries[idx] is not known.code:
            idx = self._index[address] = len(self.entries)
            self.entries.append(known.code)
        return idx

    def prefetch(self, address: int) -> None:
        """Read a code object seen just now, before the drain that will index it.

        Its identity is checked again at that drain (while the process still lives), so an
        object replaced at the same address in between is read anew, not misnamed.
        """
        if address in self._known:
            return
        mem = ProcessMemory(self.pid)
        code, ident = read_code(mem, address, self.runtime)
        self.reads += mem.reads
        self._known[address] = _Known(code, ident, -1)

    def start_file(self) -> None:
        """Begin a new file of a --rotate series: entries again from zero."""
        self.entries = []
        self._index = {}

"""Read and write recording files (format v2, see `formats/recording-v2.md`).

Version 1 files are still read: their samples become one time bucket spanning the
recording (`time_resolution_ns` 0, every `bucket` 0).

Layout: a 24-byte preamble (magic, format version, compression, body length, CRC-32)
followed by one msgpack map. The reader checks magic, then version, then length and
checksum, then every field's type and every index between tables, so a truncated,
corrupt, foreign or newer file is refused with one line naming the file and the problem.

A small file can inflate to a huge body, and a body of tiny items to a huge object tree,
so the reader never inflates the body whole nor decodes it into a msgpack tree: it
streams it (twice) and checks each table's declared length before reading it. Limits:
1 GiB inflated, 1 MiB per string or binary value, 2^26 entries per array or map, 65,536
frames per stack, at most 2 stacks per sample and 2 kernel symbols per address (plus
:data:`TABLE_SLACK`), 1024 `lost` counters, addresses strictly ascending. Equal strings,
stacks and kernel symbols share one object; sample rows equal but for count and weight
are merged. Memory is then that of the model, whatever the file repeats.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack

from bee_contract.atomic import write_atomic
from bee_contract.buildid import valid_build_id
from bee_contract.errors import RecordingFormatError
from bee_contract.recording import (
    ALL_BUCKETS,
    LOST_STACK,
    NO_STACK,
    PY_TRUNCATED,
    WEIGHT_UNITS,
    Binary,
    Header,
    JitSymbol,
    KernelInfo,
    KernelSymbol,
    Mapping,
    Process,
    PythonCode,
    PythonInfo,
    Recording,
    Sample,
)

MAGIC = b"\x89BEE\r\n\x1a\n"
FORMAT_VERSION = 2
#: Oldest format version this reader accepts.
OLDEST_VERSION = 1
_PREAMBLE = struct.Struct(">8sHBBQI")  # magic, version, compression, reserved, length, crc32
PREAMBLE_SIZE = _PREAMBLE.size
COMPRESSION_NONE = 0
COMPRESSION_ZLIB = 1

#: Upper bounds that keep a hostile file from making the reader allocate without limit.
MAX_BODY_BYTES = 1 << 30
MAX_STRING_BYTES = 1 << 20
MAX_ITEMS = 1 << 26


def encode(rec: Recording, compress: bool = True) -> bytes:
    """Serialize a recording to the bytes of a file of version FORMAT_VERSION."""
    strings: dict[str, int] = {}

    def s(value: str) -> int:
        idx = strings.get(value)
        if idx is None:
            idx = strings[value] = len(strings)
        return idx

    addresses = sorted({a for stack in rec.stacks for a in stack})
    addr_index = {a: i for i, a in enumerate(addresses)}
    h = rec.header
    body: dict[str, Any] = {
        "header": {
            "host": h.host,
            "kernel_release": h.kernel_release,
            "arch": h.arch,
            "start_time_ns": h.start_time_ns,
            "duration_ns": h.duration_ns,
            "frequency_hz": h.frequency_hz,
            "mode": h.mode,
            "weight_unit": h.weight_unit,
            "events": list(h.events),
            "target": h.target,
            "bee_version": h.bee_version,
            "argv": list(h.argv),
            "sequence": h.sequence,
            "time_resolution_ns": h.time_resolution_ns,
            **({"unwinder": h.unwinder} if h.unwinder else {}),
        },
        "binaries": [[s(b.path), b.build_id, b.size] for b in rec.binaries],
        "processes": [
            [
                p.pid, p.generation, p.ns_pid, p.ppid, s(p.comm), s(p.exe),
                None if p.cmdline is None else [s(a) for a in p.cmdline],
                [[m.start, m.end, m.offset, m.dev, m.inode, s(m.path), m.binary] for m in p.maps],
                [[j.start, j.size, s(j.name), j.first_bucket, j.last_bucket] for j in p.jit],
                *_python_column(p, s),
            ]
            for p in rec.processes
        ],
        "addresses": addresses,
        "stacks": [[addr_index[a] for a in stack] for stack in rec.stacks],
        "samples": _sample_rows(rec, s),
        "kernel": {
            "release": rec.kernel.release,
            "build_id": rec.kernel.build_id,
            "symbols": [[k.address, s(k.name), s(k.module)] for k in rec.kernel.symbols],
            **({"vdso": rec.kernel.vdso} if rec.kernel.vdso else {}),
        },
        "lost": dict(rec.lost),
    }
    if rec.python_stacks:
        body["python_stacks"] = [[v for frame in st for v in frame] for st in rec.python_stacks]
    body["strings"] = list(strings)
    raw = msgpack.packb(body, use_bin_type=True)
    compression = COMPRESSION_NONE
    if compress:
        raw = zlib.compress(raw, 6)
        compression = COMPRESSION_ZLIB
    pre = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, compression, 0, len(raw), zlib.crc32(raw))
    return pre + raw


def _sample_rows(rec: Recording, s: Callable[[str], int]) -> list[list[Any]]:
    """The samples table: most of a file's rows, so each is built in one expression."""
    comms = {c: s(c) for c in dict.fromkeys(x.comm for x in rec.samples)}
    if rec.python_stacks:
        return [[x.process, x.tid, x.cpu, comms[x.comm], x.user_stack, x.kernel_stack,
                 x.count, x.weight, x.event, x.bucket, x.python_stack] for x in rec.samples]
    return [[x.process, x.tid, x.cpu, comms[x.comm], x.user_stack, x.kernel_stack,
             x.count, x.weight, x.event, x.bucket] for x in rec.samples]


def _python_column(p: Process, s: Callable[[str], int]) -> list[Any]:
    """Process column 9 (a Python addition): written only for CPython processes."""
    if p.python is None:
        return []
    return [[p.python.version,
             [[c.address, s(c.qualname), s(c.filename), c.firstlineno, c.linetable]
              for c in p.python.codes]]]


def write(rec: Recording, path: Path, compress: bool = True) -> int:
    """Write a recording atomically (temporary file, fsync, rename) with mode 0600.

    Returns the file size. Nothing is left under the final name unless the write completed.
    """
    data = encode(rec, compress)
    write_atomic(path, data)
    return len(data)


def read(path: Path) -> Recording:
    """Read and validate a recording file; raise RecordingFormatError naming the problem."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            pre = f.read(PREAMBLE_SIZE)
            if not pre:
                raise RecordingFormatError(f"{path}: empty file, not a recording")
            read_preamble(path, pre)
            data = f.read(MAX_BODY_BYTES + 1)
    except IsADirectoryError:
        raise RecordingFormatError(f"{path}: is a directory, not a recording") from None
    except OSError as exc:
        raise RecordingFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return decode(data, path, pre)


def decode(body: bytes, path: Path, preamble: bytes) -> Recording:
    """Decode the body that follows an already-checked preamble.

    The body is never inflated or turned into a msgpack tree whole: it is streamed twice
    through a bounded inflater (:class:`_Inflater`) and a msgpack ``Unpacker``. The first
    pass reads the header, the strings (interned) and the addresses and checks every
    table's declared length against the limits in the module docstring; the second turns
    each row straight into its model object. Peak memory is therefore the model itself.
    """
    _, version, compression, _, length, crc = _PREAMBLE.unpack(preamble)
    if len(body) < length:
        raise RecordingFormatError(
            f"{path}: truncated: body has {len(body)} of {length} bytes"
        )
    if len(body) > length:
        raise RecordingFormatError(f"{path}: {len(body) - length} unexpected bytes after the body")
    if zlib.crc32(body) != crc:
        raise RecordingFormatError(f"{path}: corrupt: checksum mismatch")
    if compression not in (COMPRESSION_NONE, COMPRESSION_ZLIB):
        raise RecordingFormatError(f"{path}: unknown compression {compression}")
    dec = _Decoder(path, version)
    try:
        dec.scan(_unpacker(_Inflater(path, body, compression)))
        return dec.recording(_unpacker(_Inflater(path, body, compression)))
    except msgpack.StackError:
        raise RecordingFormatError(
            f"{path}: corrupt body: values nested deeper than msgpack allows") from None
    except msgpack.OutOfData:
        raise RecordingFormatError(f"{path}: corrupt body: msgpack ends inside a value") from None
    except msgpack.BufferFull:
        raise RecordingFormatError(
            f"{path}: corrupt body: one row is larger than {_MAX_ROW_BYTES >> 20} MiB") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        reason = str(exc) or type(exc).__name__
        raise RecordingFormatError(f"{path}: corrupt body: {reason}") from None


#: Largest single msgpack value read at once (a process row, a string, the vDSO image).
_MAX_ROW_BYTES = 64 << 20
_READ_SIZE = 1 << 20
#: Deepest stack the reader accepts (the report side shows at most 2048 frames of it).
MAX_STACK_FRAMES = 1 << 16
#: Tables whose size follows from another's (kallsyms entries: two per sampled address;
#: stacks: two per sample) may exceed that by this much (hand-made files).
TABLE_SLACK = 4096
#: Most entries in the `lost` map.
MAX_LOST_KEYS = 1024


def _unpacker(stream: _Inflater) -> msgpack.Unpacker:
    return msgpack.Unpacker(
        stream, read_size=_READ_SIZE, max_buffer_size=_MAX_ROW_BYTES, raw=False,
        strict_map_key=True, use_list=True, max_str_len=MAX_STRING_BYTES,
        max_bin_len=MAX_STRING_BYTES, max_array_len=MAX_ITEMS, max_map_len=MAX_ITEMS,
        max_ext_len=0,
    )


class _Inflater:
    """File-like view of the body, inflated on demand; refuses more than MAX_BODY_BYTES."""

    def __init__(self, path: Path, body: bytes, compression: int) -> None:
        self.path = path
        self.view = memoryview(body)
        self.pos = 0
        self.total = 0
        self.zlib = zlib.decompressobj() if compression == COMPRESSION_ZLIB else None

    def read(self, n: int) -> bytes:
        """Up to `n` bytes of the (inflated) body; b"" at its end."""
        if self.zlib is None:
            out = bytes(self.view[self.pos : self.pos + n])
            self.pos += len(out)
            return out
        d = self.zlib
        while True:
            src: bytes | memoryview = d.unconsumed_tail
            if not src:
                if d.eof:
                    return b""
                if self.pos >= len(self.view):
                    raise RecordingFormatError(f"{self.path}: truncated compressed body")
                src = self.view[self.pos : self.pos + _READ_SIZE]
                self.pos += len(src)
            try:
                out = d.decompress(src, n)
            except zlib.error as exc:
                raise RecordingFormatError(
                    f"{self.path}: corrupt compressed body: {exc}") from None
            self.total += len(out)
            if self.total > MAX_BODY_BYTES:
                raise RecordingFormatError(
                    f"{self.path}: body larger than {MAX_BODY_BYTES} bytes")
            if out:
                return out


def read_preamble(path: Path, data: bytes) -> tuple[int, int]:
    """Check the preamble bytes; return (format version, compression)."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise RecordingFormatError(f"{path}: not a bee recording (bad magic)")
    if len(data) < PREAMBLE_SIZE:
        raise RecordingFormatError(f"{path}: truncated: incomplete header")
    _, version, compression, _, _, _ = _PREAMBLE.unpack(data[:PREAMBLE_SIZE])
    if version > FORMAT_VERSION:
        raise RecordingFormatError(
            f"{path}: format version {version} is newer than this bee supports "
            f"({FORMAT_VERSION}); upgrade bee to read it"
        )
    if version < OLDEST_VERSION:
        raise RecordingFormatError(f"{path}: invalid format version {version}")
    return version, compression


def _named(what: str, index: int | None) -> str:
    """`what`, or `what[index]`."""
    return what if index is None else f"{what}[{index}]"


class _Decoder:
    """Validating conversion of the decoded msgpack tree to the model."""

    def __init__(self, path: Path, version: int = FORMAT_VERSION) -> None:
        self.path = path
        self.version = version
        self.strings: list[str] = []

    def fail(self, what: str) -> RecordingFormatError:
        return RecordingFormatError(f"{self.path}: corrupt: {what}")

    def int_(self, v: Any, what: str, lo: int = 0, hi: int = (1 << 64) - 1) -> int:
        if type(v) is not int or not lo <= v <= hi:
            raise self.fail(f"{what} is not an integer in [{lo}, {hi}]")
        return v

    def str_(self, v: Any, what: str) -> str:
        if type(v) is not str:
            raise self.fail(f"{what} is not a string")
        return v

    def list_(self, v: Any, what: str, n: int | None = None) -> list[Any]:
        if type(v) is not list:
            raise self.fail(f"{what} is not an array")
        if n is not None and len(v) < n:
            raise self.fail(f"{what} has {len(v)} fields, expected {n}")
        return v

    def dict_(self, v: Any, what: str) -> dict[str, Any]:
        if type(v) is not dict:
            raise self.fail(f"{what} is not a map")
        return v

    def sref(self, v: Any, what: str) -> str:
        return self.strings[self.int_(v, what, 0, len(self.strings) - 1)]

    def build_id(self, v: Any, what: str) -> str | None:
        if v is None:
            return None
        text = self.str_(v, what)
        if not valid_build_id(text):
            raise self.fail(f"{what} is not a lowercase hex build-id")
        return text

    def table(self, v: Any, what: str, n: int, conv: Callable[[list[Any], str], Any]) -> list[Any]:
        return [conv(self.list_(row, f"{what}[{i}]", n), f"{what}[{i}]")
                for i, row in enumerate(self.list_(v, what))]

    _TABLES = ("binaries", "processes", "stacks", "samples")
    _REQUIRED = ("header", "strings", "binaries", "processes", "addresses", "stacks",
                 "samples", "kernel")

    def _keys(self, u: msgpack.Unpacker) -> Iterator[str]:
        """The top-level keys, each to be followed by reading or skipping its value."""
        try:
            n = u.read_map_header()
        except ValueError:
            raise self.fail("top level is not a map") from None
        seen: set[str] = set()
        for _ in range(n):
            key = u.unpack()
            if type(key) is not str:
                raise self.fail("top-level key is not a string")
            if key in seen:
                raise self.fail(f"'{key}' appears twice")
            seen.add(key)
            yield key
        try:
            u.skip()
        except msgpack.OutOfData:
            return
        raise RecordingFormatError(f"{self.path}: unexpected bytes after the body")

    def _array(self, u: msgpack.Unpacker, what: str, limit: int = MAX_ITEMS,
               index: int | None = None) -> int:
        """Declared length of the array that comes next, checked against `limit`; it is
        named `what`, or `what[index]` (formatted only for an error)."""
        try:
            n: int = u.read_array_header()
        except ValueError:
            raise self.fail(f"{_named(what, index)} is not an array") from None
        if n > limit:
            raise self.fail(f"{_named(what, index)} declares {n} entries, more than {limit}")
        return n

    def scan(self, u: msgpack.Unpacker) -> None:
        """First pass: header, strings, addresses and the declared size of every table."""
        self.counts: dict[str, int] = {}
        self.addresses: list[int] = []
        self.python_stacks: tuple[tuple[tuple[int, int], ...], ...] = ()
        header: dict[str, Any] | None = None
        for key in self._keys(u):
            if key == "header":
                header = self.dict_(u.unpack(), "header")
            elif key == "strings":
                self.strings = self.scalars(u, "strings", str, intern=True)
            elif key == "addresses":
                self.addresses = self.scalars(u, "addresses", int)
                for i, a in enumerate(self.addresses):
                    if not 0 <= a < 1 << 64:
                        raise self.fail(f"addresses[{i}] is not an integer in [0, {(1 << 64) - 1}]")
                # each distinct address once, ascending (as written): no cheap repetition
                if any(a >= b for a, b in itertools.pairwise(self.addresses)):
                    raise self.fail("addresses not strictly ascending")
            elif key == "python_stacks":
                self.python_stacks = self.py_stacks(u.unpack())
            elif key in self._TABLES:
                self.counts[key] = self._array(u, key)
                for _ in range(self.counts[key]):
                    u.skip()
            else:
                u.skip()
            if key in self._REQUIRED:
                self.counts.setdefault(key, 0)
        for key in self._REQUIRED:
            if key not in self.counts:
                raise self.fail(f"missing '{key}'")
        assert header is not None
        self.parsed_header = self.header(header)
        # Every stack is some sample's user or kernel stack (the recorder keeps no others).
        if self.counts["stacks"] > 2 * self.counts["samples"] + TABLE_SLACK:
            raise self.fail(f"{self.counts['stacks']} stacks for {self.counts['samples']} "
                            "samples (each stack belongs to a sample)")
        if len(self.python_stacks) > self.counts["samples"] + TABLE_SLACK:
            raise self.fail(f"{len(self.python_stacks)} Python stacks for "
                            f"{self.counts['samples']} samples")

    def recording(self, u: msgpack.Unpacker) -> Recording:
        """Second pass: every table, row by row, straight into the model."""
        header, counts = self.parsed_header, self.counts
        self.max_bucket = _max_bucket(header)
        self.n_binaries, self.n_processes = counts["binaries"], counts["processes"]
        self.n_stacks, self.n_events = counts["stacks"], len(header.events)
        binaries: tuple[Binary, ...] = ()
        processes: tuple[Process, ...] = ()
        stacks: tuple[tuple[int, ...], ...] = ()
        samples: tuple[Sample, ...] = ()
        kernel = KernelInfo("", None, ())
        lost: dict[str, int] = {}
        for key in self._keys(u):
            if key == "binaries":
                binaries = tuple(self.rows(u, key, 3, self.binary))
            elif key == "processes":
                processes = tuple(self.rows(u, key, 9, self.process))
            elif key == "stacks":
                shared: dict[tuple[int, ...], tuple[int, ...]] = {}  # equal stacks: one tuple
                stacks = tuple(shared.setdefault(st, st)
                               for st in (self.stack(u, i) for i in range(self._array(u, key))))
            elif key == "samples":
                samples = self.samples(u)
            elif key == "kernel":
                kernel = self.kernel(u)
            elif key == "lost":
                lost = {}
                try:
                    n = u.read_map_header()
                except ValueError:
                    raise self.fail("lost is not a map") from None
                if n > MAX_LOST_KEYS:
                    raise self.fail(f"lost has {n} counters, more than {MAX_LOST_KEYS}")
                for _ in range(n):
                    k = self.str_(u.unpack(), "lost key")
                    lost[k] = self.int_(u.unpack(), f"lost[{k}]")
            else:
                u.skip()
        self.check_python_codes(processes, samples)
        return Recording(header, binaries, processes, stacks, samples, kernel, lost,
                         self.python_stacks)

    def check_python_codes(self, processes: tuple[Process, ...],
                           samples: tuple[Sample, ...]) -> None:
        """Every Python stack of a sample names only codes of the sample's process."""
        for i, s in enumerate(samples):
            if s.python_stack < 0:
                continue
            info = processes[s.process].python
            n_codes = len(info.codes) if info is not None else 0
            if any(c >= n_codes for c, _ in self.python_stacks[s.python_stack]):
                raise self.fail(f"samples[{i}].python_stack refers to a code its process lacks")

    def py_stacks(self, v: Any) -> tuple[tuple[tuple[int, int], ...], ...]:
        out = []
        for i, flat in enumerate(self.list_(v, "python_stacks")):
            # checked in two passes over its values, and value by value (for the error
            # message, with the stack's name) only when that fails
            codes, infos = (flat[0::2], flat[1::2]) if type(flat) is list else ((), ())
            if (type(flat) is list and len(codes) == len(infos)
                    and all(type(c) is int and PY_TRUNCATED <= c <= MAX_ITEMS for c in codes)
                    and all(type(x) is int and 0 <= x <= 0xFFFFFFFF for x in infos)):
                frames = tuple(zip(codes, infos, strict=True))
            else:
                frames = self._py_stack_checked(flat, f"python_stacks[{i}]")
            if PY_TRUNCATED in codes[:-1]:
                raise self.fail(f"python_stacks[{i}]: a truncation mark before the last frame")
            out.append(frames)
        return tuple(out)

    def _py_stack_checked(self, flat: Any, what: str) -> tuple[tuple[int, int], ...]:
        flat = self.list_(flat, what)
        if len(flat) % 2:
            raise self.fail(f"{what} has an odd number of values")
        return tuple(
            (self.int_(flat[j], f"{what}.code", PY_TRUNCATED, MAX_ITEMS),
             self.int_(flat[j + 1], f"{what}.info", 0, (1 << 32) - 1))
            for j in range(0, len(flat), 2))

    def python(self, v: Any, what: str) -> PythonInfo | None:
        if v is None:
            return None
        r = self.list_(v, what, 2)

        def code(c: list[Any], w: str) -> PythonCode:
            table = c[4]
            if type(table) is not bytes:
                raise self.fail(f"{w}.linetable is not binary")
            return PythonCode(self.int_(c[0], f"{w}.address"), self.sref(c[1], f"{w}.qualname"),
                              self.sref(c[2], f"{w}.filename"),
                              self.int_(c[3], f"{w}.firstlineno", 0, (1 << 31) - 1), table)

        return PythonInfo(self.int_(r[0], f"{what}.version", 0, (1 << 32) - 1),
                          tuple(self.table(r[1], f"{what}.codes", 5, code)))

    def rows(self, u: msgpack.Unpacker, what: str, n: int,
             conv: Callable[[list[Any], str], Any]) -> Iterator[Any]:
        """Rows of a top-level table, each converted as soon as it is read."""
        count = self._array(u, what)
        for i, row in enumerate(itertools.islice(u, count)):
            yield conv(self.list_(row, f"{what}[{i}]", n), f"{what}[{i}]")
            count -= 1
        if count:
            raise msgpack.OutOfData

    def samples(self, u: msgpack.Unpacker) -> tuple[Sample, ...]:
        """The samples; rows equal in every column but count and weight are merged (the
        recorder writes each key once), so repeated rows cannot multiply objects."""
        out: list[Sample] = []
        where: dict[tuple[Any, ...], int] = {}
        extra: dict[int, list[int]] = {}  # row index -> [count, weight] merged into it
        n = self._array(u, "samples")
        # each new row checked in one expression, with its bounds in locals (rows are most
        # of a file), and field by field (for the error message) only when that fails
        v2 = self.version >= 2
        py_col = 10 if v2 else 9
        n_processes, n_events, max_bucket = self.n_processes, self.n_events, self.max_bucket
        top, n_strings, n_py = self.n_stacks - 1, len(self.strings), len(self.python_stacks)
        strings = self.strings
        i = -1
        for i, row in enumerate(itertools.islice(u, n)):
            r = (row if type(row) is list and len(row) >= 9
                 else self.list_(row, f"samples[{i}]", 9))
            try:
                j = where.setdefault((*r[:6], *r[8:]), len(out))
            except TypeError:  # an unhashable unknown trailing column: kept apart
                j = len(out)
            if j == len(out):
                k = len(r)
                bucket = r[9] if v2 and k > 9 else 0
                py = r[py_col] if k > py_col else NO_STACK
                p, tid, cpu, comm, user, kernel, count, weight, event = r[:9]
                if (type(p) is int and 0 <= p < n_processes and type(tid) is int
                        and 0 <= tid <= 1 << 32 and type(cpu) is int and 0 <= cpu <= 1 << 20
                        and type(comm) is int and 0 <= comm < n_strings
                        and type(user) is int and LOST_STACK <= user <= top
                        and type(kernel) is int and LOST_STACK <= kernel <= top
                        and type(count) is int and 0 <= count < 1 << 64
                        and type(weight) is int and 0 <= weight < 1 << 64
                        and type(event) is int and 0 <= event < n_events
                        and type(bucket) is int and 0 <= bucket <= max_bucket
                        and type(py) is int and LOST_STACK <= py < n_py):
                    out.append(Sample(p, tid, cpu, strings[comm], user, kernel, count, weight,
                                      event, py, bucket))
                else:
                    out.append(self._sample_checked(r, f"samples[{i}]"))
            else:
                counts = extra.setdefault(j, [0, 0])
                counts[0] += self.int_(r[6], f"samples[{i}].count")
                counts[1] += self.int_(r[7], f"samples[{i}].weight")
        if n and i + 1 < n:
            raise msgpack.OutOfData
        for j, (count, weight) in extra.items():
            out[j] = dataclasses.replace(out[j], count=out[j].count + count,
                                         weight=out[j].weight + weight)
        return tuple(out)

    def stack(self, u: msgpack.Unpacker, i: int) -> tuple[int, ...]:
        """One stack, its address indices resolved (checked as :meth:`scalars` does, its
        name formatted only for an error: stacks are many)."""
        n = self._array(u, "stacks", MAX_STACK_FRAMES, i)
        refs = list(itertools.islice(u, n))
        if len(refs) < n:
            raise msgpack.OutOfData
        if refs and {*map(type, refs)} != {int}:
            j = next(j for j, x in enumerate(refs) if type(x) is not int)
            raise self.fail(f"stacks[{i}][{j}] is not an integer")
        addresses = self.addresses
        if refs and (min(refs) < 0 or max(refs) >= len(addresses)):
            raise self.fail(f"stacks[{i}] is not an integer in [0, {len(addresses) - 1}]")
        return tuple(map(addresses.__getitem__, refs))

    def scalars(self, u: msgpack.Unpacker, what: str, kind: type, limit: int = MAX_ITEMS,
                intern: bool = False) -> list[Any]:
        """An array of `kind` values (strings interned: duplicates cost one pointer)."""
        n = self._array(u, what, limit)
        items = itertools.islice(u, n)
        if intern:
            seen: dict[Any, Any] = {}
            try:
                out = [seen.setdefault(x, x) for x in items]
            except TypeError:  # unhashable: an array or map among them
                raise self.fail(f"{what} holds a value that is not a string") from None
        else:
            out = list(items)
        if len(out) < n:
            raise msgpack.OutOfData
        if any(type(x) is not kind for x in out):
            j = next(j for j, x in enumerate(out) if type(x) is not kind)
            raise self.fail(f"{what}[{j}] is not {'a string' if kind is str else 'an integer'}")
        return out

    def header(self, h: dict[str, Any]) -> Header:
        def get(key: str) -> Any:
            if key not in h:
                raise self.fail(f"header misses '{key}'")
            return h[key]

        unit = self.str_(get("weight_unit"), "header.weight_unit")
        if unit not in WEIGHT_UNITS:
            raise self.fail(f"header.weight_unit '{unit}' unknown")
        events = tuple(self.str_(e, "header.events[]") for e in self.list_(get("events"), "events"))
        if not events:
            raise self.fail("header.events is empty")
        return Header(
            host=self.str_(get("host"), "header.host"),
            kernel_release=self.str_(get("kernel_release"), "header.kernel_release"),
            arch=self.str_(get("arch"), "header.arch"),
            start_time_ns=self.int_(get("start_time_ns"), "header.start_time_ns"),
            duration_ns=self.int_(get("duration_ns"), "header.duration_ns"),
            frequency_hz=self.int_(get("frequency_hz"), "header.frequency_hz"),
            mode=self.str_(get("mode"), "header.mode"),
            weight_unit=unit,
            events=events,
            target=self.str_(get("target"), "header.target"),
            bee_version=self.str_(get("bee_version"), "header.bee_version"),
            argv=tuple(self.str_(a, "header.argv[]")
                       for a in self.list_(h.get("argv", []), "header.argv")),
            sequence=self.int_(h.get("sequence", 0), "header.sequence"),
            unwinder=self.str_(h.get("unwinder", ""), "header.unwinder"),
            # v1 files (and v2 writers that omit it): one bucket spanning the recording
            time_resolution_ns=self.int_(h.get("time_resolution_ns", 0) if self.version >= 2
                                         else 0, "header.time_resolution_ns"),
        )

    def binary(self, r: list[Any], what: str) -> Binary:
        return Binary(self.sref(r[0], f"{what}.path"), self.build_id(r[1], f"{what}.build_id"),
                      self.int_(r[2], f"{what}.size"))

    def process(self, r: list[Any], what: str) -> Process:
        cmdline = None if r[6] is None else tuple(
            self.sref(a, f"{what}.cmdline") for a in self.list_(r[6], f"{what}.cmdline"))
        maps = self.maps(r[7], f"{what}.maps")
        jit = tuple(self.table(r[8], f"{what}.jit", 3, self.jit_symbol))
        return Process(
            pid=self.int_(r[0], f"{what}.pid", 0, 1 << 32), generation=self.int_(r[1], what),
            ns_pid=self.int_(r[2], f"{what}.ns_pid", 0, 1 << 32),
            ppid=self.int_(r[3], f"{what}.ppid", 0, 1 << 32),
            comm=self.sref(r[4], f"{what}.comm"), exe=self.sref(r[5], f"{what}.exe"),
            cmdline=cmdline, maps=maps, jit=jit,
            python=self.python(r[9], f"{what}.python") if len(r) > 9 else None,
        )

    def jit_symbol(self, j: list[Any], what: str) -> JitSymbol:
        if len(j) < 5 or self.version < 2:  # no time range: the entry applies at any time
            return JitSymbol(self.int_(j[0], f"{what}.start"), self.int_(j[1], f"{what}.size"),
                             self.sref(j[2], f"{what}.name"))
        first = self.int_(j[3], f"{what}.first_bucket", 0, ALL_BUCKETS)
        last = self.int_(j[4], f"{what}.last_bucket", first, ALL_BUCKETS)
        return JitSymbol(self.int_(j[0], f"{what}.start"), self.int_(j[1], f"{what}.size"),
                         self.sref(j[2], f"{what}.name"), first, last)

    def maps(self, v: Any, what: str) -> tuple[Mapping, ...]:
        """A process's mappings: each row checked in one expression, and by
        :meth:`mapping` (for the error message) only when that fails."""
        out = []
        strings, top = self.strings, self.n_binaries - 1
        for i, m in enumerate(self.list_(v, what)):
            if type(m) is list and len(m) >= 7:
                start, end, offset, dev, inode, path, binary = m[:7]
                if (type(start) is int and type(end) is int and 0 <= start <= end < 1 << 64
                        and type(offset) is int and 0 <= offset < 1 << 64
                        and type(dev) is int and 0 <= dev < 1 << 64
                        and type(inode) is int and 0 <= inode < 1 << 64
                        and type(path) is int and 0 <= path < len(strings)
                        and type(binary) is int and -1 <= binary <= top):
                    out.append(Mapping(start, end, offset, dev, inode, strings[path], binary))
                    continue
            out.append(self.mapping(self.list_(m, f"{what}[{i}]", 7), f"{what}[{i}]"))
        return tuple(out)

    def mapping(self, m: list[Any], what: str) -> Mapping:
        start, end = self.int_(m[0], f"{what}.start"), self.int_(m[1], f"{what}.end")
        if end < start:
            raise self.fail(f"{what} ends before it starts")
        return Mapping(
            start, end, self.int_(m[2], f"{what}.offset"), self.int_(m[3], f"{what}.dev"),
            self.int_(m[4], f"{what}.inode"), self.sref(m[5], f"{what}.path"),
            self.int_(m[6], f"{what}.binary", -1, self.n_binaries - 1),
        )

    def _sample_checked(self, r: list[Any], what: str) -> Sample:
        def stack(v: Any, name: str) -> int:
            return self.int_(v, f"{what}.{name}", LOST_STACK, self.n_stacks - 1)

        process = self.int_(r[0], f"{what}.process", 0, self.n_processes - 1)
        # version 2: column 9 bucket, 10 python_stack; version 1: 9 python_stack
        bucket, py_col = 0, 9
        if self.version >= 2:
            bucket, py_col = 0 if len(r) <= 9 else self.int_(
                r[9], f"{what}.bucket", 0, self.max_bucket), 10
        py = NO_STACK
        if len(r) > py_col:
            py = self.int_(r[py_col], f"{what}.python_stack", LOST_STACK,
                           len(self.python_stacks) - 1)
        return Sample(
            process=process,
            tid=self.int_(r[1], f"{what}.tid", 0, 1 << 32),
            cpu=self.int_(r[2], f"{what}.cpu", 0, 1 << 20),
            comm=self.sref(r[3], f"{what}.comm"),
            user_stack=stack(r[4], "user_stack"), kernel_stack=stack(r[5], "kernel_stack"),
            count=self.int_(r[6], f"{what}.count"), weight=self.int_(r[7], f"{what}.weight"),
            event=self.int_(r[8], f"{what}.event", 0, self.n_events - 1),
            python_stack=py,
            bucket=bucket,
        )

    def kernel(self, u: msgpack.Unpacker) -> KernelInfo:
        """The kernel map; its symbols are at most two per sampled address."""
        try:
            n = u.read_map_header()
        except ValueError:
            raise self.fail("kernel is not a map") from None
        k: dict[str, Any] = {}
        syms: list[KernelSymbol] = []
        for _ in range(n):
            key = u.unpack()
            if key != "symbols":
                k[self.str_(key, "kernel key")] = u.unpack()
                continue
            # the recorder keeps the entry covering each address and its successor
            limit = 2 * len(self.addresses) + TABLE_SLACK
            same: dict[tuple[Any, ...], KernelSymbol] = {}  # equal rows: one object
            strings = self.strings
            for i in range(self._array(u, "kernel.symbols", limit)):
                r = u.unpack()
                # checked in one expression, field by field (for the message) if that fails
                if not (type(r) is list and len(r) >= 3
                        and type(r[0]) is int and 0 <= r[0] < 1 << 64
                        and type(r[1]) is int and 0 <= r[1] < len(strings)
                        and type(r[2]) is int and 0 <= r[2] < len(strings)):
                    r = self.list_(r, f"kernel.symbols[{i}]", 3)
                    w = f"kernel.symbols[{i}]"
                    self.int_(r[0], f"{w}.address")
                    self.sref(r[1], f"{w}.name")
                    self.sref(r[2], f"{w}.module")
                key = (r[0], r[1], r[2])
                sym = same.get(key)
                if sym is None:
                    sym = same[key] = KernelSymbol(r[0], strings[r[1]], strings[r[2]])
                syms.append(sym)
        if any(a.address > b.address for a, b in itertools.pairwise(syms)):
            raise self.fail("kernel.symbols not sorted by address")
        vdso = k.get("vdso", b"")
        if type(vdso) is not bytes:
            raise self.fail("kernel.vdso is not binary")
        return KernelInfo(
            release=self.str_(k.get("release", ""), "kernel.release"),
            build_id=self.build_id(k.get("build_id"), "kernel.build_id"),
            symbols=tuple(syms), vdso=vdso,
        )


def _max_bucket(h: Header) -> int:
    """The last time bucket a sample may have: buckets start within the recording."""
    if not h.time_resolution_ns:
        return 0
    return min(max(0, (h.duration_ns - 1) // h.time_resolution_ns), 0xFFFFFFFF)


__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "decode",
    "encode",
    "read",
    "write",
]

"""Read and write recording files (format v2, see `formats/recording-v2.md`).

Version 1 files are still read: their samples become one time bucket spanning the
recording (`time_resolution_ns` 0, every `bucket` 0).

Layout: a 24-byte preamble (magic, format version, compression, body length, CRC-32)
followed by one msgpack map. The reader checks magic, then version, then length and
checksum, then every field's type and every index between tables, so a truncated,
corrupt, foreign or newer file is refused with one line naming the file and the problem.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack

from bee_contract.atomic import write_atomic
from bee_contract.errors import RecordingFormatError
from bee_contract.recording import (
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
                [[j.start, j.size, s(j.name)] for j in p.jit],
                *_python_column(p, s),
            ]
            for p in rec.processes
        ],
        "addresses": addresses,
        "stacks": [[addr_index[a] for a in stack] for stack in rec.stacks],
        "samples": [
            [x.process, x.tid, x.cpu, s(x.comm), x.user_stack, x.kernel_stack,
             x.count, x.weight, x.event, x.bucket,
             *((x.python_stack,) if rec.python_stacks else ())]
            for x in rec.samples
        ],
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
    """Decode the body that follows an already-checked preamble."""
    _, version, compression, _, length, crc = _PREAMBLE.unpack(preamble)
    if len(body) < length:
        raise RecordingFormatError(
            f"{path}: truncated: body has {len(body)} of {length} bytes"
        )
    if len(body) > length:
        raise RecordingFormatError(f"{path}: {len(body) - length} unexpected bytes after the body")
    if zlib.crc32(body) != crc:
        raise RecordingFormatError(f"{path}: corrupt: checksum mismatch")
    if compression == COMPRESSION_ZLIB:
        d = zlib.decompressobj()
        try:
            body = d.decompress(body, MAX_BODY_BYTES)
        except zlib.error as exc:
            raise RecordingFormatError(f"{path}: corrupt compressed body: {exc}") from None
        if d.unconsumed_tail:
            raise RecordingFormatError(f"{path}: body larger than {MAX_BODY_BYTES} bytes")
        if not d.eof:
            raise RecordingFormatError(f"{path}: truncated compressed body")
    elif compression != COMPRESSION_NONE:
        raise RecordingFormatError(f"{path}: unknown compression {compression}")
    try:
        obj = msgpack.unpackb(
            body, raw=False, strict_map_key=True, use_list=True,
            max_str_len=MAX_STRING_BYTES, max_bin_len=MAX_STRING_BYTES,
            max_array_len=min(MAX_ITEMS, len(body)), max_map_len=min(MAX_ITEMS, len(body)),
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise RecordingFormatError(f"{path}: corrupt body: {exc}") from None
    return _Decoder(path, version).recording(obj)


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
        if not 2 <= len(text) <= 128 or any(c not in "0123456789abcdef" for c in text):
            raise self.fail(f"{what} is not a lowercase hex build-id")
        return text

    def table(self, v: Any, what: str, n: int, conv: Callable[[list[Any], str], Any]) -> list[Any]:
        return [conv(self.list_(row, f"{what}[{i}]", n), f"{what}[{i}]")
                for i, row in enumerate(self.list_(v, what))]

    def recording(self, obj: Any) -> Recording:
        top = self.dict_(obj, "top level")
        for key in ("header", "strings", "binaries", "processes", "addresses", "stacks",
                    "samples", "kernel"):
            if key not in top:
                raise self.fail(f"missing '{key}'")
        self.strings = [self.str_(x, f"strings[{i}]")
                        for i, x in enumerate(self.list_(top["strings"], "strings"))]
        header = self.header(self.dict_(top["header"], "header"))
        binaries = tuple(self.table(top["binaries"], "binaries", 3, self.binary))
        self.n_binaries = len(binaries)
        processes = tuple(self.table(top["processes"], "processes", 9, self.process))
        addresses = [self.int_(a, f"addresses[{i}]")
                     for i, a in enumerate(self.list_(top["addresses"], "addresses"))]
        stacks = tuple(
            tuple(addresses[self.int_(a, f"stacks[{i}]", 0, len(addresses) - 1)]
                  for a in self.list_(st, f"stacks[{i}]"))
            for i, st in enumerate(self.list_(top["stacks"], "stacks"))
        )
        self.n_processes, self.n_stacks, self.n_events = len(processes), len(stacks), len(
            header.events)
        self.max_bucket = _max_bucket(header)
        self.python_stacks = self.py_stacks(top.get("python_stacks", []))
        self.processes = processes
        samples = tuple(self.table(top["samples"], "samples", 9, self.sample))
        kernel = self.kernel(self.dict_(top["kernel"], "kernel"))
        lost_raw = self.dict_(top.get("lost", {}), "lost")
        lost = {self.str_(k, "lost key"): self.int_(v, f"lost[{k}]") for k, v in lost_raw.items()}
        return Recording(header, binaries, processes, stacks, samples, kernel, lost,
                         self.python_stacks)

    def py_stacks(self, v: Any) -> tuple[tuple[tuple[int, int], ...], ...]:
        out = []
        for i, flat in enumerate(self.list_(v, "python_stacks")):
            what = f"python_stacks[{i}]"
            flat = self.list_(flat, what)
            if len(flat) % 2:
                raise self.fail(f"{what} has an odd number of values")
            frames = tuple(
                (self.int_(flat[j], f"{what}.code", PY_TRUNCATED, MAX_ITEMS),
                 self.int_(flat[j + 1], f"{what}.info", 0, (1 << 32) - 1))
                for j in range(0, len(flat), 2))
            if any(c == PY_TRUNCATED for c, _ in frames[:-1]):
                raise self.fail(f"{what}: a truncation mark before the last frame")
            out.append(frames)
        return tuple(out)

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
        maps = tuple(self.table(r[7], f"{what}.maps", 7, self.mapping))
        jit = tuple(self.table(r[8], f"{what}.jit", 3, lambda j, w: JitSymbol(
            self.int_(j[0], f"{w}.start"), self.int_(j[1], f"{w}.size"),
            self.sref(j[2], f"{w}.name"))))
        return Process(
            pid=self.int_(r[0], f"{what}.pid", 0, 1 << 32), generation=self.int_(r[1], what),
            ns_pid=self.int_(r[2], f"{what}.ns_pid", 0, 1 << 32),
            ppid=self.int_(r[3], f"{what}.ppid", 0, 1 << 32),
            comm=self.sref(r[4], f"{what}.comm"), exe=self.sref(r[5], f"{what}.exe"),
            cmdline=cmdline, maps=maps, jit=jit,
            python=self.python(r[9], f"{what}.python") if len(r) > 9 else None,
        )

    def mapping(self, m: list[Any], what: str) -> Mapping:
        start, end = self.int_(m[0], f"{what}.start"), self.int_(m[1], f"{what}.end")
        if end < start:
            raise self.fail(f"{what} ends before it starts")
        return Mapping(
            start, end, self.int_(m[2], f"{what}.offset"), self.int_(m[3], f"{what}.dev"),
            self.int_(m[4], f"{what}.inode"), self.sref(m[5], f"{what}.path"),
            self.int_(m[6], f"{what}.binary", -1, self.n_binaries - 1),
        )

    def sample(self, r: list[Any], what: str) -> Sample:
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
            if py >= 0:
                info = self.processes[process].python
                n_codes = len(info.codes) if info is not None else 0
                if any(c >= n_codes for c, _ in self.python_stacks[py]):
                    raise self.fail(f"{what}.python_stack refers to a code its process lacks")
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

    def kernel(self, k: dict[str, Any]) -> KernelInfo:
        syms = self.table(k.get("symbols", []), "kernel.symbols", 3, lambda r, w: KernelSymbol(
            self.int_(r[0], f"{w}.address"), self.sref(r[1], f"{w}.name"),
            self.sref(r[2], f"{w}.module")))
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


def stack_addresses(rec: Recording, index: int) -> Sequence[int]:
    """The addresses of stack `index`, or an empty sequence for NO_STACK/LOST_STACK."""
    return rec.stacks[index] if index >= 0 else ()


__all__ = [
    "FORMAT_VERSION",
    "LOST_STACK",
    "MAGIC",
    "NO_STACK",
    "decode",
    "encode",
    "read",
    "write",
    "write_atomic",
]

"""Load the BPF program: shipped compiled with bee, else compiled by bcc once per host.

This is the only module that imports bcc, and it does so lazily, so that the recording
model and codec (and the whole report side) work on machines without BPF.

bcc 0.26 runs clang at every `BPF(text=...)` (over a second of CPU for bee's program,
most of a launch). bee never needs that at a launch:

* One compiled program serves every option set. bpf/profile.c has no compile-time
  switch: options are read at run time from a map, each map's size is set here when the
  map is created (`sizes`), and the caller loads and attaches only the functions its
  options use (`programs`).
* bee ships that program compiled, with its package: `bpf/prebuilt/KEY.bpf`, whose key
  covers only the source text. The program declares every layout it uses and reads no
  kernel header, so its instructions do not depend on the host; the one host fact in a
  map definition, the possible CPUs a perf buffer holds, is set when it loads.
  `scripts/build_bpf_objects.py` writes it, and a test fails when it differs from a
  compile of the current source.
* When the shipped program is missing or refused (a source changed without a rebuild, or
  `BEE_RECORD_SHIPPED_BPF` names another folder or none), bcc compiles once, and what is
  needed to load the same program again without clang is written to the `bpf/` folder of
  `bee_record.cachedir` (`/var/cache/bee/bpf/KEY.bpf` for root), keyed by a hash of the
  source text, the kernel release, the possible CPUs, bcc's version and bee's version.

An entry (shipped or cached) holds every function's instructions (a map's file
descriptor in an `ld_imm64` replaced by the map's index), every map's definition and the
key and leaf type descriptions bcc made from the C types, the license and the kernel
version. Loading one creates the maps, puts their descriptors back into the
instructions and loads the programs (the kernel's verifier checks each, as always),
without running clang. A fresh compile is loaded the same way (from the entry just
extracted), so that map sizes and the functions loaded follow the options on every path.
The object returned is a `bcc.BPF` (attach, detach, perf buffers and tables are bcc's own
code, working on these descriptors), so the sampler does not care which path loaded it.

A missing, foreign, truncated or undecodable entry, or a map or program the kernel
refuses, means a compile, never a failure. `use_cache=False` (`bee record
--no-bpf-cache`) neither reads nor writes the cache, nor uses a shipped program.
"""

from __future__ import annotations

import atexit
import ctypes as ct
import dataclasses
import functools
import hashlib
import json
import os
import re
import resource
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import msgpack

from bee_contract import __version__ as BEE_VERSION
from bee_record import cachedir

#: Version of the cache entry layout; part of the key.
ENTRY_VERSION = 1
_MAGIC = b"BEEBPF1\0"
_DIGEST = 16
#: Bounds of an entry read back: file size, maps, functions, instructions per function.
MAX_ENTRY_BYTES = 16 << 20
MAX_TABLES = 256
MAX_FUNCS = 256
MAX_INSNS = 1 << 20
MAX_TYPE_BYTES = 1 << 20
#: Entries kept (one per distinct set of options recorded with); the oldest go first.
KEEP_ENTRIES = 64
SUFFIX = ".bpf"
#: Names another folder of shipped programs in place of the package's ("": none).
SHIPPED_ENV = "BEE_RECORD_SHIPPED_BPF"
_PERF_EVENT_ARRAY = 4

#: The numbers of bpf(2) and perf_event_open(2) per architecture (bee loads programs and
#: attaches probes with them; elsewhere it cannot record).
_SYS_BPF, _SYS_PERF_EVENT_OPEN = {
    "x86_64": (321, 298), "aarch64": (280, 241), "riscv64": (280, 241),
    "ppc64le": (361, 319), "s390x": (351, 331)}.get(os.uname().machine, (None, None))
_BPF_MAP_CREATE = 0
_BPF_PROG_LOAD = 5
_BPF_LINK_CREATE = 28
_BPF_PERF_EVENT = 41  # attach type of a link to a perf event
_LD_IMM64 = 0x18
_PSEUDO_MAP_FD = 1
_INSN = struct.Struct("<BBhi")
_OBJ_NAME_LEN = 16
_NAME_OK = re.compile(rb"[A-Za-z0-9_.]*")
#: BPF program types (uapi bpf.h) and the cpu-clock perf event (uapi perf_event.h).
PROG_KPROBE = 2
PROG_TRACEPOINT = 5
PROG_PERF_EVENT = 7
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0
#: Prefixes of functions bcc loads and attaches itself when the module is created.
TRACEPOINT_PREFIX = "tracepoint__"
_AUTOLOAD = ("kprobe__", "kretprobe__", "raw_tracepoint__", "kfunc__", "kretfunc__", "lsm__",
             "kmod_ret__", "bpf_iter__")


class EntryError(ValueError):
    """A cache entry that cannot be used (the caller compiles instead)."""


# -- instructions ---------------------------------------------------------------------------

def maps_to_indices(insns: bytes, index_of_fd: Mapping[int, int]) -> bytes:
    """Replace each map descriptor loaded by an `ld_imm64` with the map's index.

    Raise EntryError on a truncated program, a descriptor of no known map, or any other
    pseudo source (map values, BTF ids, functions) the cache cannot restore.
    """
    return _patch(insns, lambda imm: _lookup(index_of_fd, imm, "map descriptor"))


def indices_to_maps(insns: bytes, fds: Sequence[int]) -> bytes:
    """Put the descriptor of map `i` back into each `ld_imm64` that names index `i`."""
    return _patch(insns, lambda imm: _lookup(dict(enumerate(fds)), imm, "map index"))


def _lookup(table: Mapping[int, int], key: int, what: str) -> int:
    try:
        return table[key]
    except KeyError:
        raise EntryError(f"{what} {key} names no map") from None


def _patch(insns: bytes, swap: Any) -> bytes:
    if len(insns) % _INSN.size:
        raise EntryError("program length is not a whole number of instructions")
    out = bytearray(insns)
    n = len(insns) // _INSN.size
    i = 0
    while i < n:
        code, regs, off, imm = _INSN.unpack_from(out, i * _INSN.size)
        if code == _LD_IMM64:
            if i + 1 >= n:
                raise EntryError("ld_imm64 cut in half at the end of the program")
            src = regs >> 4
            if src == _PSEUDO_MAP_FD:
                _INSN.pack_into(out, i * _INSN.size, code, regs, off, swap(imm))
            elif src != 0:
                raise EntryError(f"ld_imm64 with pseudo source {src} is not cached")
            i += 2
            continue
        i += 1
    return bytes(out)


# -- the cache entry ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MapDef:
    """One map as bcc defined it."""

    name: str
    type: int
    key_size: int
    leaf_size: int
    max_entries: int
    flags: int
    key_desc: str
    leaf_desc: str


@dataclass(frozen=True, slots=True)
class Entry:
    """What reloads a compiled program: maps, instructions (map indices), license."""

    maps: tuple[MapDef, ...]
    funcs: dict[str, bytes]
    license: str
    kern_version: int


def cache_key(src: str, bcc_version: str) -> str:
    """The hex key of a compile: source, kernel, CPUs, bcc and bee versions.

    Also the exact libbcc file (a rebuild against another LLVM keeps bcc's version) and
    where the kernel headers clang reads come from.
    """
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            cpus = f.read().strip()
    except OSError:
        cpus = "?"
    release = os.uname().release
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps([ENTRY_VERSION, src, release, cpus, bcc_version,
                         BEE_VERSION, _identity(_loaded_libbcc()),
                         os.path.realpath(f"/lib/modules/{release}/build")]).encode())
    return h.hexdigest()


def shipped_key(src: str) -> str:
    """The hex key of a shipped program: the source text, nothing of the host (see the
    module doc)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps([ENTRY_VERSION, "shipped", src]).encode())
    return h.hexdigest()


def shipped_entry(src: str) -> Entry | None:
    """The shipped program of this source; None when bee ships none. EntryError when the
    shipped file is damaged."""
    key = shipped_key(src)
    folder = os.environ.get(SHIPPED_ENV)
    if folder == "":
        return None
    base: Any = (resources.files("bee_record.bpf").joinpath("prebuilt") if folder is None
                 else Path(folder))
    entry = base.joinpath(f"{key}{SUFFIX}")
    if not entry.is_file():
        return None
    with entry.open("rb") as f:
        data = f.read(MAX_ENTRY_BYTES + 1)
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryError("shipped program too large")
    return decode(data, key)


def fitted(entry: Entry, sizes: Mapping[str, int], possible_cpus: int) -> Entry:
    """`entry` with each map named in `sizes` made that large, and each perf buffer's map
    sized to the host's possible CPUs. EntryError for a size out of range."""
    maps = []
    for m in entry.maps:
        n = possible_cpus if m.type == _PERF_EVENT_ARRAY else sizes.get(m.name, m.max_entries)
        if not 0 < n < 1 << 32:
            raise EntryError(f"map {m.name}: size {n} out of range")
        maps.append(dataclasses.replace(m, max_entries=n))
    return dataclasses.replace(entry, maps=tuple(maps))


def _loaded_libbcc() -> str:
    """Path of the libbcc this process mapped (bcc is imported), else its soname."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(maxsplit=5)[5:]
                if path and "/libbcc.so" in path[0]:
                    return path[0].strip()
    except OSError:
        pass
    return "libbcc.so.0"


def _identity(path: str) -> str:
    """Resolved path, size and modification time of a file ("?" when it cannot be read)."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return "?"
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def encode(key: str, entry: Entry) -> bytes:
    """The file of one entry: magic, checksum, then msgpack."""
    body = msgpack.packb({
        "key": key, "license": entry.license, "kern_version": entry.kern_version,
        "maps": [[m.name, m.type, m.key_size, m.leaf_size, m.max_entries, m.flags,
                  m.key_desc, m.leaf_desc] for m in entry.maps],
        "funcs": entry.funcs,
    }, use_bin_type=True)
    return _MAGIC + hashlib.blake2b(body, digest_size=_DIGEST).digest() + body


def decode(data: bytes, key: str) -> Entry:
    """The entry in a cache file made for `key`; EntryError when anything is off."""
    head = len(_MAGIC) + _DIGEST
    if len(data) < head or not data.startswith(_MAGIC):
        raise EntryError("not a bee BPF cache entry")
    body = data[head:]
    if hashlib.blake2b(body, digest_size=_DIGEST).digest() != data[len(_MAGIC):head]:
        raise EntryError("checksum mismatch")
    try:
        doc = msgpack.unpackb(body, raw=False, max_bin_len=MAX_ENTRY_BYTES,
                              max_str_len=MAX_ENTRY_BYTES, max_array_len=MAX_TABLES * 8,
                              max_map_len=MAX_FUNCS)
        if doc["key"] != key:
            raise EntryError("made for another key")
        maps = tuple(_map_def(m) for m in doc["maps"])
        funcs = doc["funcs"]
        lic, kver = doc["license"], doc["kern_version"]
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise EntryError(f"undecodable: {exc}") from None
    if not (isinstance(lic, str) and isinstance(kver, int) and 0 <= kver < 1 << 32):
        raise EntryError("bad license or kernel version")
    if len(maps) > MAX_TABLES or not isinstance(funcs, dict) or len(funcs) > MAX_FUNCS:
        raise EntryError("too many maps or functions")
    for name, insns in funcs.items():
        if not (isinstance(name, str) and isinstance(insns, bytes)
                and 0 < len(insns) <= MAX_INSNS * _INSN.size):
            raise EntryError("bad function")
        indices_to_maps(insns, range(len(maps)))  # every index names a map
    return Entry(maps, funcs, lic, kver)


def _map_def(m: Any) -> MapDef:
    if not isinstance(m, list) or len(m) != 8:
        raise EntryError("bad map")
    name, mtype, ksize, lsize, entries, flags, kdesc, ldesc = m
    if not (isinstance(name, str) and isinstance(kdesc, str) and isinstance(ldesc, str)):
        raise EntryError("bad map")
    for v in (mtype, ksize, lsize, entries, flags):
        if not isinstance(v, int) or not 0 <= v < 1 << 32:
            raise EntryError("bad map")
    if ksize > MAX_TYPE_BYTES or lsize > MAX_TYPE_BYTES:
        raise EntryError("bad map")
    return MapDef(name, mtype, ksize, lsize, entries, flags, kdesc, ldesc)


# -- bcc ------------------------------------------------------------------------------------

def import_bcc() -> Any:
    """bcc's module, or ImportError."""
    import bcc

    return bcc


def lookup_and_delete_batch() -> Any:
    """bcc's binding of libbpf's `bpf_map_lookup_and_delete_batch` (for batch drains)."""
    from bcc.libbcc import lib

    return lib.bpf_lookup_and_delete_batch


def _libbcc() -> Any:
    """libbcc with the module accessors bcc's Python binding does not declare."""
    lib = ct.CDLL("libbcc.so.0", use_errno=True)
    for name, res, args in (
            ("bpf_num_tables", ct.c_size_t, [ct.c_void_p]),
            ("bpf_table_name", ct.c_char_p, [ct.c_void_p, ct.c_size_t]),
            ("bpf_table_fd", ct.c_int, [ct.c_void_p, ct.c_char_p]),
            ("bpf_table_type_id", ct.c_int, [ct.c_void_p, ct.c_size_t]),
            ("bpf_table_max_entries_id", ct.c_size_t, [ct.c_void_p, ct.c_size_t]),
            ("bpf_table_flags_id", ct.c_int, [ct.c_void_p, ct.c_size_t]),
            ("bpf_table_key_size_id", ct.c_size_t, [ct.c_void_p, ct.c_size_t]),
            ("bpf_table_leaf_size_id", ct.c_size_t, [ct.c_void_p, ct.c_size_t]),
            ("bpf_table_key_desc_id", ct.c_char_p, [ct.c_void_p, ct.c_size_t]),
            ("bpf_table_leaf_desc_id", ct.c_char_p, [ct.c_void_p, ct.c_size_t]),
            ("bpf_num_functions", ct.c_size_t, [ct.c_void_p]),
            ("bpf_function_name", ct.c_char_p, [ct.c_void_p, ct.c_size_t]),
            ("bpf_function_start", ct.c_void_p, [ct.c_void_p, ct.c_char_p]),
            ("bpf_function_size", ct.c_size_t, [ct.c_void_p, ct.c_char_p]),
            ("bpf_module_license", ct.c_char_p, [ct.c_void_p]),
            ("bpf_module_kern_version", ct.c_uint, [ct.c_void_p])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def extract(module: int) -> Entry:
    """What reloads a freshly compiled bcc module (EntryError when it cannot be cached)."""
    lib = _libbcc()
    maps = []
    index_of_fd = {}
    for i in range(lib.bpf_num_tables(module)):
        name = lib.bpf_table_name(module, i)
        fd = lib.bpf_table_fd(module, name)
        if name is None or fd < 0:
            raise EntryError("a map without a descriptor (extern or pinned)")
        index_of_fd[fd] = i
        if lib.bpf_table_type_id(module, i) not in _table_classes():
            raise EntryError(f"map {name.decode()}: its type is not cached")
        maps.append(MapDef(
            name.decode(), lib.bpf_table_type_id(module, i),
            lib.bpf_table_key_size_id(module, i), lib.bpf_table_leaf_size_id(module, i),
            lib.bpf_table_max_entries_id(module, i), lib.bpf_table_flags_id(module, i),
            (lib.bpf_table_key_desc_id(module, i) or b"").decode(),
            (lib.bpf_table_leaf_desc_id(module, i) or b"").decode()))
    funcs = {}
    for i in range(lib.bpf_num_functions(module)):
        raw = lib.bpf_function_name(module, i)
        name = raw.decode()
        if name.startswith(_AUTOLOAD):
            raise EntryError(f"{name}: bcc would attach it itself; only tracepoints are cached")
        start, size = lib.bpf_function_start(module, raw), lib.bpf_function_size(module, raw)
        funcs[name] = maps_to_indices(ct.string_at(start, size), index_of_fd)
    return Entry(tuple(maps), funcs, (lib.bpf_module_license(module) or b"GPL").decode(),
                 lib.bpf_module_kern_version(module))


# -- bpf(2) ---------------------------------------------------------------------------------

_libc = ct.CDLL(None, use_errno=True)
_raised_memlock = False
#: struct perf_event_attr up to config2 (PERF_ATTR_SIZE_VER1): type, size, config,
#: sample_period, sample_type, read_format, flag bits, wakeup_events, bp_type, config1,
#: config2.
_PERF_ATTR = struct.Struct("<IIQQQQQIIQQ")
_PERF_FLAG_FD_CLOEXEC = 8


def _known(number: int | None, name: str) -> int:
    """`number`, the system call `name`'s on this architecture; ENOSYS when unknown."""
    if number is None:
        raise OSError(38, f"{name} number unknown on {os.uname().machine}")  # ENOSYS
    return number


def _syscall(number: int | None, name: str, *args: Any) -> int:
    """A system call that returns a descriptor; OSError with its errno on failure."""
    fd = int(_libc.syscall(_known(number, name), *args))
    if fd < 0:
        err = ct.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def _bpf(cmd: int, attr: ct.Array[ct.c_char]) -> int:
    """bpf(2); retries once with RLIMIT_MEMLOCK lifted on EPERM, as bcc does."""
    global _raised_memlock
    while True:
        try:
            return _syscall(_SYS_BPF, "bpf(2)", cmd, attr, len(attr))
        except OSError as exc:
            if exc.errno != 1 or _raised_memlock:  # EPERM: old kernels charge MEMLOCK
                raise
            _raised_memlock = True
            try:
                resource.setrlimit(resource.RLIMIT_MEMLOCK,
                                   (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            except (ValueError, OSError):
                raise exc from None


def open_perf_event(ev_type: int, config: int, config1: int = 0, config2: int = 0) -> int:
    """perf_event_open(2) of an event of every process on every CPU, enabled; its
    descriptor. (For trace events, pid -1 on CPU 0 runs an attached program wherever the
    event fires.)"""
    attr = ct.create_string_buffer(_PERF_ATTR.size)
    _PERF_ATTR.pack_into(attr, 0, ev_type, _PERF_ATTR.size, config, 1, 0, 0, 0, 1, 0,
                         config1, config2)
    return _syscall(_SYS_PERF_EVENT_OPEN, "perf_event_open(2)", attr, -1, 0, -1,
                    _PERF_FLAG_FD_CLOEXEC)


def _obj_name(name: str) -> bytes:
    raw = name.encode()[:_OBJ_NAME_LEN - 1]
    return raw if _NAME_OK.fullmatch(raw) else b""


def create_map(m: MapDef) -> int:
    """A new map with bcc's definition; its descriptor."""
    attr = ct.create_string_buffer(48)
    struct.pack_into("<IIIIIII16sI", attr, 0, m.type, m.key_size, m.leaf_size,
                     m.max_entries, m.flags, 0, 0, _obj_name(m.name), 0)
    return _bpf(_BPF_MAP_CREATE, attr)


def load_program(name: str, prog_type: int, insns: bytes, license: str,
                 kern_version: int) -> int:
    """A verified program (the kernel's verifier runs); its descriptor."""
    code = ct.create_string_buffer(insns, len(insns))
    lic = ct.create_string_buffer(license.encode())
    if name.startswith(TRACEPOINT_PREFIX):
        name = name[len(TRACEPOINT_PREFIX):]
    attr = ct.create_string_buffer(72)
    struct.pack_into("<IIQQIIQII16s", attr, 0, prog_type, len(insns) // _INSN.size,
                     ct.addressof(code), ct.addressof(lic), 0, 0, 0, kern_version, 0,
                     _obj_name(name))
    return _bpf(_BPF_PROG_LOAD, attr)


def link_perf_event(prog_fd: int, perf_fd: int, cookie: int) -> int:
    """Attach a loaded program to an open perf event (a tracepoint, uprobe or kprobe)
    with a BPF link, `cookie` being what bpf_get_attach_cookie returns in the program;
    the link's descriptor (closing it detaches)."""
    attr = ct.create_string_buffer(64)
    struct.pack_into("<IIIIQ", attr, 0, prog_fd, perf_fd, _BPF_PERF_EVENT, 0, cookie)
    return _bpf(_BPF_LINK_CREATE, attr)


def uprobe_offset(path: str, symbol: str) -> tuple[str, int]:
    """The binary (a path, or a library name such as `c`) and the file offset of
    `symbol` in it, as bcc resolves them; ValueError when it cannot."""
    bcc = import_bcc()
    try:
        module, offset = bcc.BPF._check_path_symbol(path.encode(), symbol.encode(), 0, -1)
    except Exception as exc:  # bcc raises bare Exception
        raise ValueError(str(exc).strip() or "symbol not found") from None
    return module.decode(), int(offset)


# -- the two paths --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Loaded:
    """A loaded program: the bcc.BPF object and how it was loaded (for tests and checks)."""

    bpf: Any
    from_cache: bool
    note: str  # "cache hit", "shipped program", "compiled: <why neither loaded>"


def load(src: str, sizes: Mapping[str, int], programs: Mapping[str, int],
         use_cache: bool = True, before_compile: Callable[[], None] | None = None) -> Loaded:
    """Load the program: from the cache or the shipped program, else compiled by bcc.

    `sizes` (map name -> entries) sets the size of each map named; `programs` (function
    name -> BPF program type) are the functions loaded now, so that a refused one still
    falls back to a compile; those named `tracepoint__CATEGORY__NAME` are also attached
    to that tracepoint. `before_compile` runs before clang does (checks only a compile
    needs). bcc errors (compile or load) propagate as bcc raises them.
    """
    bcc = import_bcc()
    _known(_SYS_BPF, "bpf(2)")  # before a compile that could never be loaded
    make = _cached_bpf(bcc)
    cpus = _possible_cpus()
    key = cache_key(src, bcc.__version__)
    path = cachedir.cache_dir("bpf") / f"{key}{SUFFIX}"
    note = "compiled: cache bypassed"
    if use_cache:
        data = cachedir.read_entry(path, MAX_ENTRY_BYTES)  # checks the folder's rules
        if data is None:
            why = cachedir.why_unusable(path, MAX_ENTRY_BYTES)
            note = f"compiled: {why or 'entry unreadable'}"
        else:
            try:
                return Loaded(make(fitted(decode(data, key), sizes, cpus), programs), True,
                              "cache hit")
            except (EntryError, OSError) as exc:
                note = f"compiled: cache entry refused: {exc}"
        try:
            shipped = shipped_entry(src)
            if shipped is not None:
                return Loaded(make(fitted(shipped, sizes, cpus), programs), True,
                              "shipped program")
        except (EntryError, OSError) as exc:
            note += f"; shipped program refused: {exc}"
    if before_compile is not None:
        before_compile()
    entry = compile_entry(bcc, src)
    if use_cache and cachedir.write_entry(path, encode(key, entry)):
        cachedir.prune(path.parent, SUFFIX, KEEP_ENTRIES)
    return Loaded(make(fitted(entry, sizes, cpus), programs), False, note)


def compile_entry(bcc: Any, src: str) -> Entry:
    """Compile `src` with bcc and return its entry (bcc's own maps and programs are
    closed again: the caller loads the entry, sized and selected as it needs)."""
    b = bcc.BPF(text=src.encode())
    try:
        return extract(b.module)
    finally:
        b.cleanup()


def _possible_cpus() -> int:
    """How many CPUs the kernel may bring up (what bcc sizes a perf buffer's map to)."""
    from bcc.utils import get_possible_cpus

    return max(1, len(get_possible_cpus()))


@functools.cache
def _table_classes() -> dict[int, Any]:
    """bcc's table class of each map type a cache entry may hold."""
    from bcc import table as T

    return {T.BPF_MAP_TYPE_HASH: T.HashTable, T.BPF_MAP_TYPE_ARRAY: T.Array,
            T.BPF_MAP_TYPE_PROG_ARRAY: T.ProgArray,
            T.BPF_MAP_TYPE_PERF_EVENT_ARRAY: T.PerfEventArray,
            T.BPF_MAP_TYPE_PERCPU_HASH: T.PerCpuHash, T.BPF_MAP_TYPE_PERCPU_ARRAY: T.PerCpuArray,
            T.BPF_MAP_TYPE_STACK_TRACE: T.StackTrace, T.BPF_MAP_TYPE_LRU_HASH: T.LruHash,
            T.BPF_MAP_TYPE_LRU_PERCPU_HASH: T.LruPerCpuHash}


@functools.cache
def _cached_bpf(bcc: Any) -> Any:
    """The bcc.BPF subclass built on maps and programs loaded from a cache entry."""
    from bcc import table as T

    by_type = _table_classes()
    BPF = bcc.BPF

    class CachedBPF(BPF):  # type: ignore[misc, valid-type]
        """A bcc.BPF whose maps and programs come from a cache entry, not from clang."""

        def __init__(self, entry: Entry, programs: Mapping[str, int]) -> None:
            # what BPF.__init__ sets up, minus the module (bcc's accessors accept NULL)
            self.kprobe_fds: dict[Any, Any] = {}
            self.uprobe_fds: dict[Any, Any] = {}
            self.tracepoint_fds: dict[Any, Any] = {}
            self.raw_tracepoint_fds: dict[Any, Any] = {}
            self.kfunc_entry_fds: dict[Any, Any] = {}
            self.kfunc_exit_fds: dict[Any, Any] = {}
            self.lsm_fds: dict[Any, Any] = {}
            self.perf_buffers: dict[Any, Any] = {}
            self.open_perf_events: dict[Any, Any] = {}
            self._ringbuf_manager = None
            self.tracefile = None
            self.debug = 0
            self.funcs: dict[bytes, Any] = {}
            self.tables: dict[Any, Any] = {}
            self.module = None
            self._entry = entry
            self._map_fds: list[int] = []
            try:
                types = [self._types(m) for m in entry.maps]
                for m in entry.maps:
                    self._map_fds.append(create_map(m))
                self._insns = {name.encode(): indices_to_maps(code, self._map_fds)
                               for name, code in entry.funcs.items()}
                for i, (m, (key, leaf)) in enumerate(zip(entry.maps, types, strict=True)):
                    self.tables[m.name] = self._table(i, m, key, leaf)
                for name, prog_type in programs.items():
                    self.load_func(name, prog_type)
                atexit.register(self.cleanup)
                for name in programs:
                    if name.startswith(TRACEPOINT_PREFIX):
                        tp = name[len(TRACEPOINT_PREFIX):].replace("__", ":")
                        self.attach_tracepoint(tp=tp.encode(), fn_name=name.encode())
            except BaseException as exc:
                self.cleanup()
                if isinstance(exc, Exception) and not isinstance(exc, (EntryError, OSError)):
                    lines = str(exc).strip().splitlines()
                    raise EntryError(lines[-1] if lines else repr(exc)) from None
                raise

        @staticmethod
        def _types(m: MapDef) -> tuple[Any, Any]:
            key, leaf = (BPF._decode_table_type(json.loads(d)) for d in (m.key_desc,
                                                                          m.leaf_desc))
            if ct.sizeof(key) != m.key_size or ct.sizeof(leaf) != m.leaf_size:
                raise EntryError(f"map {m.name}: types do not match its sizes")
            return key, leaf

        def _table(self, i: int, m: MapDef, key: Any, leaf: Any) -> Any:
            cls = by_type.get(m.type)
            if cls is None:
                raise EntryError(f"map {m.name}: type {m.type} is not cached")
            name = m.name.encode()
            t = (cls(self, i, self._map_fds[i], key, leaf, name)
                 if cls is T.PerfEventArray else cls(self, i, self._map_fds[i], key, leaf))
            # bcc reads these from the module, which a cached program does not have
            t.ttype, t.flags, t.max_entries = m.type, m.flags, m.max_entries
            return t

        def load_func(self, func_name: Any, prog_type: int, device: Any = None,
                      attach_type: int = -1) -> Any:
            name = func_name.encode() if isinstance(func_name, str) else bytes(func_name)
            fn = self.funcs.get(name)
            if fn is not None:
                return fn
            insns = self._insns.get(name)
            if insns is None:
                raise EntryError(f"no program {name.decode()} in the entry")
            fd = load_program(name.decode(), prog_type, insns, self._entry.license,
                              self._entry.kern_version)
            fn = self.funcs[name] = BPF.Function(self, name, fd)
            return fn

        def get_table(self, name: Any, keytype: Any = None, leaftype: Any = None,
                      reducer: Any = None) -> Any:
            # every table was made with the object, named by str (BPF.__getitem__ looks
            # there first); bcc's cleanup drops the perf buffers' tables, then gone
            text = name.decode() if isinstance(name, bytes) else name
            if text in self.tables:
                return self.tables[text]
            raise KeyError(name)

        def close(self) -> None:
            for fn in list(self.funcs.values()):
                os.close(fn.fd)
            self.funcs.clear()
            self.tables.clear()  # tables first: a perf buffer's table deletes its entries
            for fd in self._map_fds:
                os.close(fd)
            self._map_fds = []

    return CachedBPF


__all__ = ["Entry", "EntryError", "Loaded", "MapDef", "cache_key", "compile_entry", "decode",
           "encode", "extract", "fitted", "import_bcc", "indices_to_maps", "link_perf_event",
           "load", "lookup_and_delete_batch", "maps_to_indices", "open_perf_event",
           "shipped_entry", "shipped_key", "uprobe_offset"]

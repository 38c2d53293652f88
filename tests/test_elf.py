"""Tests for bee_report.elf.elffile: the mmap+struct ELF reader used for symbolization.

Fixtures are C sources under tests/fixtures/elf/, compiled with gcc into a temporary
directory at test time. Results are checked against binutils (readelf, addr2line,
objcopy) run on the same files, and malformed inputs are checked to fail only with
ElfError.
"""

from __future__ import annotations

import ctypes
import io
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee_contract.elf import ET_DYN, ET_EXEC, ET_REL, MAX_SECTION_BYTES, Section
from bee_contract.errors import BeeError, ElfError
from bee_report.elf.elffile import ElfFile
from bee_report.elf.symbols import FunctionTable, Symbol

FIXTURES = Path(__file__).parent / "fixtures" / "elf"
LIBC = Path("/usr/lib/x86_64-linux-gnu/libc.so.6")
DEBUG_ROOT = Path("/usr/lib/debug/.build-id")
EM_X86_64 = 62
EM_386 = 3

# ---------------------------------------------------------------------------- helpers


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], check=True, capture_output=True, text=True, cwd=cwd
    )
    return done.stdout


def _gcc(out: Path, *flags: str, src: str = "funcs.c") -> Path:
    _need("gcc")
    _run("gcc", *flags, str(FIXTURES / src), "-o", out)
    return out


def _debug_file_for(path: Path) -> Path | None:
    with ElfFile.open(path) as elf:
        bid = elf.build_id
    if bid is None:
        return None
    candidate = DEBUG_ROOT / bid[:2] / f"{bid[2:]}.debug"
    return candidate if candidate.is_file() else None


SEGMENT_TYPES = {
    "NULL": 0,
    "LOAD": 1,
    "DYNAMIC": 2,
    "INTERP": 3,
    "NOTE": 4,
    "PHDR": 6,
    "TLS": 7,
    "GNU_EH_FRAME": 0x6474E550,
    "GNU_STACK": 0x6474E551,
    "GNU_RELRO": 0x6474E552,
    "GNU_PROPERTY": 0x6474E553,
}
SECTION_TYPES = {
    "NULL": 0,
    "PROGBITS": 1,
    "SYMTAB": 2,
    "STRTAB": 3,
    "RELA": 4,
    "HASH": 5,
    "DYNAMIC": 6,
    "NOTE": 7,
    "NOBITS": 8,
    "REL": 9,
    "DYNSYM": 11,
    "INIT_ARRAY": 14,
    "FINI_ARRAY": 15,
    "GROUP": 17,
    "RELR": 19,
    "GNU_HASH": 0x6FFFFFF6,
    "VERDEF": 0x6FFFFFFD,
    "VERNEED": 0x6FFFFFFE,
    "VERSYM": 0x6FFFFFFF,
}
SECTION_FLAGS = {
    "W": 1,
    "A": 2,
    "X": 4,
    "M": 0x10,
    "S": 0x20,
    "I": 0x40,
    "L": 0x80,
    "O": 0x100,
    "G": 0x200,
    "T": 0x400,
    "C": 0x800,
}


def readelf_header(path: Path) -> dict[str, str]:
    out = _run("readelf", "-hW", path)
    return {
        k.strip(): v.strip()
        for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)
    }


def readelf_segments(path: Path) -> list[tuple[int, int, int, int, int, int, int]]:
    """(type, flags, offset, vaddr, filesz, memsz, align) per `readelf -lW` row."""
    rows = []
    pat = re.compile(
        r"^\s+([A-Z_]+|LOPROC\+\S+|LOOS\+\S+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)"
        r"\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+([RWE ]{3})\s+(0x[0-9a-f]+)$"
    )
    for line in _run("readelf", "-lW", path).splitlines():
        m = pat.match(line)
        if not m:
            continue
        flags = sum(bit for ch, bit in (("R", 4), ("W", 2), ("E", 1)) if ch in m[7])
        p_type = SEGMENT_TYPES.get(m[1], -1)
        rows.append(
            (
                p_type,
                flags,
                int(m[2], 16),
                int(m[3], 16),
                int(m[5], 16),
                int(m[6], 16),
                int(m[8], 16),
            )
        )
    return rows


@dataclass(frozen=True)
class RSec:
    """One `readelf -SW` row; ``type`` is -1 for type names not in SECTION_TYPES."""

    index: int
    name: str
    type: int
    addr: int
    offset: int
    size: int
    entsize: int
    flags: str
    link: int
    info: int
    align: int


def readelf_sections(path: Path) -> list[RSec]:
    pat = re.compile(
        r"^\s*\[\s*(\d+)\]\s+(\S*)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)"
        r"\s+([0-9a-f]+)\s+([A-Za-z]*)\s+(\d+)\s+(\d+)\s+(\d+)$"
    )
    rows = []
    for line in _run("readelf", "-SW", path).splitlines():
        m = pat.match(line)
        if m:
            rows.append(
                RSec(
                    index=int(m[1]),
                    name=m[2],
                    type=SECTION_TYPES.get(m[3], -1),
                    addr=int(m[4], 16),
                    offset=int(m[5], 16),
                    size=int(m[6], 16),
                    entsize=int(m[7], 16),
                    flags=m[8],
                    link=int(m[9]),
                    info=int(m[10]),
                    align=int(m[11]),
                )
            )
    return rows


@dataclass(frozen=True)
class RSym:
    table: str
    index: int
    value: int
    size: int
    type: str
    bind: str
    ndx: str
    name: str


def readelf_symbols(path: Path) -> list[RSym]:
    """All rows of `readelf -sW`, .dynsym names without the ' (N)' / '@VER' suffix."""
    syms: list[RSym] = []
    table = ""
    for line in _run("readelf", "-sW", path).splitlines():
        m = re.match(r"^Symbol table '([^']+)'", line)
        if m:
            table = m[1]
            continue
        parts = line.split(None, 7)
        if len(parts) < 7 or not parts[0].endswith(":") or not parts[0][:-1].isdigit():
            continue
        name = parts[7] if len(parts) > 7 else ""
        if table == ".dynsym":
            name = re.sub(r" \(\d+\)$", "", name).split("@")[0]
        syms.append(
            RSym(
                table,
                int(parts[0][:-1]),
                int(parts[1], 16),
                int(parts[2], 0),
                parts[3],
                parts[4],
                parts[6],
                name,
            )
        )
    return syms


def readelf_build_id(path: Path) -> str | None:
    m = re.search(r"Build ID: ([0-9a-f]+)", _run("readelf", "-nW", path))
    return m[1] if m else None


def function_syms(syms: list[RSym]) -> list[RSym]:
    """Defined FUNC/IFUNC symbols with a value, .symtab first (the table's input)."""
    order = {".symtab": 0, ".dynsym": 1}
    keep = [
        s
        for s in syms
        if s.type in ("FUNC", "IFUNC") and s.ndx.isdigit() and s.value and s.table in order
    ]
    return sorted(keep, key=lambda s: (order[s.table], s.index))


def addr2line_names(path: Path, addrs: list[int]) -> list[str]:
    _need("addr2line")
    done = subprocess.run(
        ["addr2line", "-f", "-e", str(path)],
        input="".join(f"{a:#x}\n" for a in addrs),
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.splitlines()[::2]


def symbol_only_copy(src: Path, dst: Path) -> Path:
    """Copy of `src` without DWARF, build-id and debuglink: addr2line then names
    functions from the ELF symbol table alone (no separate debug file is found)."""
    _need("objcopy")
    _run(
        "objcopy",
        "--strip-debug",
        "--remove-section=.note.gnu.build-id",
        "--remove-section=.gnu_debuglink",
        src,
        dst,
    )
    return dst


def table_entries(table: FunctionTable) -> list[tuple[int, int, str]]:
    arrays = table.to_arrays()
    return list(zip(arrays["starts"], arrays["sizes"], arrays["names"], strict=True))


def _name_at(table: FunctionTable, addr: int) -> str | None:
    sym = table.lookup(addr)
    return None if sym is None else sym.name


def addresses_inside(table: FunctionTable, count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    entries = table_entries(table)
    out = []
    for _ in range(count):
        start, size, _name = rng.choice(entries)
        out.append(start + rng.randrange(size))
    return out


def compare_with_addr2line(
    table: FunctionTable, reference: Path, addrs: list[int]
) -> tuple[int, list[str]]:
    expected = addr2line_names(reference, addrs)
    mismatches = []
    for addr, want in zip(addrs, expected, strict=True):
        got = table.lookup(addr)
        if got is None or got.name != want:
            mismatches.append(f"{addr:#x}: addr2line={want!r} bee={got}")
    return len(addrs) - len(mismatches), mismatches


def exercise(elf_bytes: bytes, name: str = "fuzz.elf") -> None:
    """Drive every public reader over `elf_bytes`; only ElfError may escape."""
    try:
        with ElfFile.from_bytes(elf_bytes, name) as elf:
            _ = (elf.build_id, elf.debuglink, elf.has_debug_info, elf.elf_type)
            for sec in elf.sections:
                elf.section_data(sec)
                elf.section(sec.name)
            for seg in elf.segments:
                elf.file_offset_to_vaddr(seg.offset)
                elf.load_bias_for(0x7F0000000000, seg.offset - seg.offset % 4096)
            table = elf.functions()
            for start, size, _ in table_entries(table)[:50]:
                table.lookup(start + size // 2)
            FunctionTable.from_arrays(table.to_arrays())
            inner = elf.gnu_debugdata()
            if inner is not None:
                inner.functions()
    except ElfError as exc:
        msg = str(exc)
        assert name in msg and "\n" not in msg, msg


# --------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Built:
    dir: Path
    exe: Path  # PIE, -O2, no DWARF
    exe_nopie: Path
    exe_g: Path  # PIE with DWARF
    so: Path  # shared library


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    d = tmp_path_factory.mktemp("elf")
    common = ("-O2", "-Wl,--build-id=sha1")
    return Built(
        dir=d,
        exe=_gcc(d / "funcs", *common),
        exe_nopie=_gcc(d / "funcs-nopie", *common, "-no-pie", "-fno-pie"),
        exe_g=_gcc(d / "funcs-g", *common, "-g"),
        so=_gcc(d / "libfuncs.so", *common, "-shared", "-fPIC"),
    )


@pytest.fixture(scope="session")
def libc_debug() -> Path:
    if not LIBC.is_file():
        pytest.skip(f"{LIBC} not present")
    debug = _debug_file_for(LIBC)
    if debug is None:
        pytest.skip("libc debug file not installed (libc6-dbg)")
    return debug


# ------------------------------------------------------------------- headers & tables


@pytest.mark.parametrize("which", ["exe", "exe_nopie", "so"])
def test_header_matches_readelf(built: Built, which: str) -> None:
    # GIVEN a gcc-built binary
    path: Path = getattr(built, which)
    # WHEN we open it and readelf -h describes it
    header = readelf_header(path)
    with ElfFile.open(path) as elf:
        # THEN class, byte order, type and machine agree
        assert elf.is_64 == (header["Class"] == "ELF64")
        assert elf.little_endian == ("little endian" in header["Data"])
        want_type = {"DYN": ET_DYN, "EXEC": ET_EXEC, "REL": ET_REL}[header["Type"].split()[0]]
        assert elf.elf_type == want_type
        assert elf.machine == EM_X86_64
        assert elf.path == path


@pytest.mark.parametrize("which", ["exe", "exe_nopie", "so", "exe_g", "libc"])
def test_segments_and_sections_match_readelf(built: Built, which: str) -> None:
    # GIVEN a binary (fixture or the system libc)
    path = LIBC if which == "libc" else getattr(built, which)
    if not path.is_file():
        pytest.skip(f"{path} missing")
    _need("readelf")
    # WHEN we parse it
    with ElfFile.open(path) as elf:
        segs = [
            (s.p_type, s.flags, s.offset, s.vaddr, s.filesz, s.memsz, s.align) for s in elf.segments
        ]
        sections = elf.sections
    # THEN every program header matches readelf -lW (types readelf names and we map)
    want_segs = readelf_segments(path)
    assert len(segs) == len(want_segs)
    for got, want in zip(segs, want_segs, strict=True):
        if want[0] == -1:
            got = (-1, *got[1:])
        assert got == want
    # AND every section header matches readelf -SW
    _assert_sections_match(sections, readelf_sections(path))


def _assert_sections_match(sections: tuple[Section, ...], want: list[RSec]) -> None:
    assert len(sections) == len(want)
    for i, (sec, row) in enumerate(zip(sections, want, strict=True)):
        got = RSec(
            i,
            sec.name,
            sec.sh_type if row.type != -1 else -1,
            sec.addr,
            sec.offset,
            sec.size,
            sec.entsize,
            row.flags,
            sec.link,
            sec.info,
            sec.addralign,
        )
        assert got == row
        want_flags = sum(SECTION_FLAGS.get(ch, 0) for ch in row.flags)
        assert sec.flags & 0xFFF == want_flags, sec


def test_section_lookup_by_name(built: Built) -> None:
    # GIVEN the fixture executable
    with ElfFile.open(built.exe) as elf:
        # WHEN we ask for sections by name
        text = elf.section(".text")
        missing = elf.section(".no-such-section")
        # THEN .text is the executable PROGBITS section readelf shows, absent is None
        assert text is not None and text.flags & 4 and text.sh_type == 1
        row = next(r for r in readelf_sections(built.exe) if r.name == ".text")
        assert (text.addr, text.size) == (row.addr, row.size)
        assert missing is None


@pytest.mark.parametrize("which", ["exe", "so", "libc", "libc_debug"])
def test_build_id_matches_readelf(built: Built, which: str) -> None:
    # GIVEN a binary with a GNU build-id note (or libc's separate debug file)
    if which == "libc_debug":
        path = _debug_file_for(LIBC) if LIBC.is_file() else None
        if path is None:
            pytest.skip("no libc debug file")
    else:
        path = LIBC if which == "libc" else getattr(built, which)
    _need("readelf")
    # WHEN we read its build-id
    with ElfFile.open(path) as elf:
        got = elf.build_id
    # THEN it is the lowercase hex readelf -n prints
    want = readelf_build_id(path)
    assert want is not None
    assert got == want


def test_no_build_id_gives_none(built: Built) -> None:
    # GIVEN the fixture linked without a build-id
    path = _gcc(built.dir / "funcs-nobid", "-O2", "-Wl,--build-id=none")
    # WHEN / THEN the build-id is None (and readelf agrees there is none)
    with ElfFile.open(path) as elf:
        assert elf.build_id is None
    assert readelf_build_id(path) is None


def test_has_debug_info(built: Built) -> None:
    # GIVEN the fixture with and without -g
    # WHEN / THEN has_debug_info reflects the presence of .debug_info
    with ElfFile.open(built.exe_g) as g, ElfFile.open(built.exe) as plain:
        assert g.has_debug_info is True
        assert plain.has_debug_info is False


# ---------------------------------------------------------------------- function table


def _assert_table_matches_symbols(table: FunctionTable, syms: list[RSym]) -> None:
    """Every sized symbol range is in the table under the first alias in table order;
    every table entry is the range of a real symbol (or a size-0 symbol's extension)."""
    funcs = function_syms(syms)
    entries = {(start, size): name for start, size, name in table_entries(table)}
    first_alias: dict[tuple[int, int], str] = {}
    for s in funcs:
        if s.size:
            first_alias.setdefault((s.value, s.size), s.name)
    missing = {k: v for k, v in first_alias.items() if entries.get(k) != v}
    assert not missing, f"ranges missing or named differently: {list(missing.items())[:10]}"
    by_start: dict[int, set[str]] = {}
    for s in funcs:
        by_start.setdefault(s.value, set()).add(s.name)
    for start, size, name in table_entries(table):
        assert name in by_start.get(start, set()), (hex(start), size, name)
        assert size > 0


def test_functions_match_readelf_symbols(built: Built) -> None:
    # GIVEN the fixture (static, global, weak, alias, ifunc, clones, size-0 functions)
    _need("readelf")
    syms = readelf_symbols(built.exe)
    # WHEN we build its function table
    with ElfFile.open(built.exe) as elf:
        table = elf.functions()
        # THEN it agrees with readelf -sW, and is cached
        assert elf.functions() is table
    _assert_table_matches_symbols(table, syms)
    names = {name for _, _, name in table_entries(table)}
    assert {"local_helper", "global_fn", "weak_fn", "hot_with_cold", "main"} <= names
    # AND aliases collapse to the first symbol in table order (LOCAL before GLOBAL)
    assert "resolve_pick" in names and "picked" not in names
    assert "global_fn" in names and "global_alias" not in names


def test_clone_suffixes_are_kept(built: Built) -> None:
    # GIVEN the -O2 fixture, where gcc emits .cold/.constprop/.isra/.part clones
    suffix = re.compile(r"\.(cold|constprop|isra|part)(\.\d+)?$")
    clones = [
        s for s in function_syms(readelf_symbols(built.exe)) if suffix.search(s.name) and s.size
    ]
    assert any(s.name.endswith(".cold") for s in clones), clones
    assert len(clones) >= 2
    # WHEN we look up an address inside each clone
    with ElfFile.open(built.exe) as elf:
        table = elf.functions()
        for s in clones:
            got = table.lookup(s.value + s.size - 1)
            # THEN the name is printed verbatim, suffix included
            assert got is not None and got.name == s.name


def test_size_zero_symbols_extend_to_next_symbol_in_section(built: Built) -> None:
    # GIVEN asm functions without .size: asm_zero_a, then asm_zero_b, then asm_sized
    syms = {s.name: s for s in function_syms(readelf_symbols(built.exe))}
    a, b, sized = syms["asm_zero_a"], syms["asm_zero_b"], syms["asm_sized"]
    assert a.size == b.size == 0 and a.value < b.value < sized.value
    init = syms["_init"]  # size 0, alone in .init: extends to the end of .init
    init_sec = next(r for r in readelf_sections(built.exe) if r.name == ".init")
    with ElfFile.open(built.exe) as elf:
        table = elf.functions()
    # WHEN / THEN each extends to the next function start, never past its section
    assert table.lookup(a.value) == Symbol("asm_zero_a", a.value, b.value - a.value)
    assert table.lookup(b.value - 1) == Symbol("asm_zero_a", a.value, b.value - a.value)
    assert table.lookup(b.value) == Symbol("asm_zero_b", b.value, sized.value - b.value)
    assert _name_at(table, sized.value) == "asm_sized"
    init_end = init_sec.addr + init_sec.size
    assert table.lookup(init_end - 1) == Symbol("_init", init.value, init_end - init.value)
    assert _name_at(table, init_end) != "_init"


def test_lookup_outside_functions_is_none(built: Built) -> None:
    # GIVEN the fixture table
    with ElfFile.open(built.exe) as elf:
        table = elf.functions()
    entries = table_entries(table)
    # WHEN looking up below the first function, past the last, and in the data segment
    # THEN nothing is found
    assert table.lookup(0) is None
    assert table.lookup(entries[0][0] - 1) is None
    last = max(start + size for start, size, _ in entries)
    assert table.lookup(last) is None
    assert table.lookup(2**64 + 5) is None
    assert table.lookup(-1) is None


@pytest.mark.parametrize("which", ["exe", "exe_nopie", "so"])
def test_lookup_matches_addr2line_on_fixture(built: Built, which: str) -> None:
    # GIVEN the fixture (no DWARF, so addr2line names functions from .symtab)
    path: Path = getattr(built, which)
    with ElfFile.open(path) as elf:
        table = elf.functions()
    # WHEN we look up every address inside every function
    addrs = [start + k for start, size, _ in table_entries(table) for k in range(size)]
    agreed, mismatches = compare_with_addr2line(table, path, addrs)
    # THEN the name is exactly what addr2line -f prints, everywhere
    print("\n".join(mismatches))
    assert not mismatches, mismatches[:20]
    assert agreed > 200


def test_lookup_matches_addr2line_on_libc(libc_debug: Path, tmp_path: Path) -> None:
    # GIVEN libc's debug file (full .symtab) and a symbol-only copy of it for addr2line.
    # (Run on libc.so.6 itself, addr2line finds the DWARF via the build-id and prints
    # DWARF names: inlined callees, internal aliases; a symbol table cannot give those.)
    reference = symbol_only_copy(libc_debug, tmp_path / "libc-symbols.elf")
    with ElfFile.open(libc_debug) as elf:
        table = elf.functions()
    # WHEN we look up 2000 random addresses inside function symbols
    addrs = addresses_inside(table, 2000, seed=1234)
    agreed, mismatches = compare_with_addr2line(table, reference, addrs)
    # THEN at least 99% agree with addr2line -f
    print(f"\nlibc: {agreed}/{len(addrs)} agree; mismatches:\n" + "\n".join(mismatches))
    assert agreed >= 0.99 * len(addrs), mismatches[:30]


def test_libc_debug_file_table_covers_dynsym(libc_debug: Path) -> None:
    # GIVEN libc.so.6 (only .dynsym) and its debug file (.symtab, .text is NOBITS)
    with ElfFile.open(LIBC) as lib, ElfFile.open(libc_debug) as dbg:
        assert dbg.build_id == lib.build_id
        assert lib.debuglink is not None and lib.debuglink[0].endswith(".debug")
        stripped, full = lib.functions(), dbg.functions()
    # WHEN looking up the middle of every exported function in both
    # THEN both find a function starting at the same address
    for start, size, _name in table_entries(stripped):
        got = full.lookup(start + size // 2)
        assert got is not None and got.start == start, (hex(start), got)
    assert len(full) > len(stripped) > 1000


# ---------------------------------------------------------------- stripped / debuglink


def test_stripped_binary_uses_dynsym(built: Built) -> None:
    # GIVEN the shared library stripped of .symtab (only .dynsym left)
    _need("strip", "readelf")
    stripped = built.dir / "libfuncs-stripped.so"
    _run("strip", "--strip-all", "-o", stripped, built.so)
    syms = readelf_symbols(stripped)
    assert not any(s.table == ".symtab" for s in syms)
    # WHEN we build the function table
    with ElfFile.open(stripped) as elf:
        assert elf.section(".symtab") is None
        table = elf.functions()
    # THEN it holds exactly the exported functions, as readelf --dyn-syms shows them
    _assert_table_matches_symbols(table, syms)
    names = {name for _, _, name in table_entries(table)}
    assert {"weak_fn", "hot_with_cold", "asm_zero_a"} <= names
    assert len({"global_fn", "global_alias"} & names) == 1  # same range: one alias kept
    assert "local_helper" not in names
    dyn = {s.name: s for s in function_syms(syms)}
    got = table.lookup(dyn["hot_with_cold"].value + 3)
    assert got is not None and got.name == "hot_with_cold"


def test_debuglink_and_separate_debug_file(built: Built) -> None:
    # GIVEN a debug file split off with objcopy and a stripped binary linking to it
    _need("objcopy")
    d = built.dir / "dbglink"
    d.mkdir(exist_ok=True)
    shutil.copy(built.exe_g, d / "prog")
    _run("objcopy", "--only-keep-debug", "prog", "prog.debug", cwd=d)
    _run(
        "objcopy", "--strip-debug", "--add-gnu-debuglink=prog.debug", "prog", "prog.stripped", cwd=d
    )
    crc = zlib.crc32((d / "prog.debug").read_bytes())
    with (
        ElfFile.open(d / "prog.stripped") as stripped,
        ElfFile.open(d / "prog.debug") as debug,
        ElfFile.open(built.exe_g) as original,
    ):
        # WHEN / THEN the debuglink names the file and the CRC32 of its contents
        assert stripped.debuglink == ("prog.debug", crc)
        assert original.debuglink is None
        # AND the debug file has DWARF and the same build-id, the stripped one neither DWARF
        assert debug.has_debug_info and not stripped.has_debug_info
        assert debug.build_id == stripped.build_id == original.build_id is not None
        # AND the debug file's NOBITS .text does not stop its symbols being read
        text = debug.section(".text")
        assert text is not None and text.sh_type == 8 and debug.section_data(text) == b""
        assert table_entries(debug.functions()) == table_entries(original.functions())


def test_gnu_debugdata_minidebuginfo(built: Built) -> None:
    # GIVEN a MiniDebugInfo binary: stripped, with an xz'd symbol-only ELF in .gnu_debugdata
    _need("objcopy", "strip", "xz")
    d = built.dir / "minidebug"
    d.mkdir(exist_ok=True)
    shutil.copy(built.exe_g, d / "prog")
    _run("objcopy", "--only-keep-debug", "prog", "mini", cwd=d)
    _run("strip", "--strip-debug", "--remove-section=.comment", "mini", cwd=d)
    _run("xz", "-f", "mini", cwd=d)
    _run("strip", "--strip-all", "prog", cwd=d)
    _run("objcopy", "--add-section", ".gnu_debugdata=mini.xz", "prog", cwd=d)
    with ElfFile.open(d / "prog") as elf, ElfFile.open(built.exe_g) as original:
        # WHEN we open the embedded ELF
        inner = elf.gnu_debugdata()
        # THEN it is an in-memory ELF with the full function table of the original
        assert inner is not None
        assert inner.path.name.endswith("[.gnu_debugdata]")
        assert inner.build_id == original.build_id
        assert not inner.has_debug_info
        assert table_entries(inner.functions()) == table_entries(original.functions())
        assert "local_helper" not in {n for _, _, n in table_entries(elf.functions())}
        # AND a binary without the section gives None
        assert original.gnu_debugdata() is None


def test_gnu_debugdata_corrupt_xz_is_elf_error(built: Built) -> None:
    # GIVEN a .gnu_debugdata section that is not valid xz
    _need("objcopy")
    junk = built.dir / "junk.xz"
    junk.write_bytes(b"\xfd7zXZ\x00" + b"garbage" * 20)
    path = built.dir / "funcs-badxz"
    _run("objcopy", "--add-section", f".gnu_debugdata={junk}", built.exe, path)
    # WHEN / THEN opening the embedded ELF raises ElfError naming the file
    with ElfFile.open(path) as elf, pytest.raises(ElfError, match="gnu_debugdata"):
        elf.gnu_debugdata()


# ------------------------------------------------------------------ compressed sections


def _dump_section(path: Path, name: str, out: Path) -> bytes:
    _run("objcopy", f"--dump-section={name}={out}", path, path.with_suffix(".discard"))
    return out.read_bytes()


@pytest.mark.parametrize(
    ("flag", "section"), [("zlib", ".debug_info"), ("zlib-gnu", ".zdebug_info")]
)
def test_compressed_debug_sections(built: Built, flag: str, section: str) -> None:
    # GIVEN the fixture built with compressed DWARF, and a decompressed copy by objcopy
    _need("objcopy")
    try:
        path = _gcc(built.dir / f"funcs-gz-{flag}", "-O2", "-g", f"-gz={flag}")
    except subprocess.CalledProcessError:
        pytest.skip(f"gcc cannot -gz={flag}")
    plain = built.dir / f"funcs-gz-{flag}-plain"
    _run("objcopy", "--decompress-debug-sections", path, plain)
    want = _dump_section(plain, ".debug_info", built.dir / f"debug_info-{flag}.bin")
    with ElfFile.open(path) as elf:
        sec = elf.section(section)
        assert sec is not None
        if flag == "zlib":
            assert sec.flags & 0x800  # SHF_COMPRESSED
        # WHEN we read the section
        data = elf.section_data(sec)
        # THEN it is decompressed to exactly objcopy's bytes, and DWARF is detected
        assert data == want and len(data) > sec.size - 24
        assert elf.has_debug_info


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


@pytest.fixture(scope="session")
def gz_image(built: Built) -> tuple[bytes, Section]:
    path = _gcc(built.dir / "funcs-gz", "-O2", "-g", "-gz=zlib")
    with ElfFile.open(path) as elf:
        sec = elf.section(".debug_info")
        assert sec is not None and sec.flags & 0x800
        return path.read_bytes(), sec


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (("<I", 0, 2), "zstd"),  # ch_type = ELFCOMPRESS_ZSTD
        (("<I", 0, 77), "unknown compression type 77"),
        (("<Q", 8, MAX_SECTION_BYTES + 1), "too large"),  # ch_size
        (("<Q", 8, 5), "header says 5"),
        (("<I", 24, 0xDEADBEEF), "bad zlib data"),  # corrupt the zlib stream
    ],
)
def test_bad_compressed_section(
    gz_image: tuple[bytes, Section],
    monkeypatch: pytest.MonkeyPatch,
    patch: tuple[str, int, int],
    message: str,
) -> None:
    # GIVEN a compressed .debug_info whose compression header or payload is damaged
    # (and no zstandard module, so zstd is unsupported)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    data, sec = gz_image
    fmt, rel, value = patch
    bad = _patch(data, sec.offset + rel, fmt, value)
    # WHEN we read it
    with ElfFile.from_bytes(bad, "damaged.elf") as elf:
        target = elf.section(".debug_info")
        assert target is not None
        # THEN we get a one-line ElfError naming the file and the problem
        with pytest.raises(ElfError, match=message) as info:
            elf.section_data(target)
    assert str(info.value).startswith("damaged.elf: ")


class _IdentityZstd:
    """Stand-in for the `zstandard` module whose "decompression" is the identity:
    exercises bee's zstd glue (size checks, chunked reads) where zstandard is absent."""

    class ZstdError(Exception):
        pass

    class ZstdDecompressor:
        def stream_reader(self, source: bytes) -> io.BytesIO:
            return io.BytesIO(source)


def _zstd_elf(built: Built, payload: bytes, size: int, tag: str) -> bytes:
    """The -g fixture with .debug_info replaced by an ELFCOMPRESS_ZSTD section."""
    blob = built.dir / f"zstd-{tag}.bin"
    blob.write_bytes(struct.pack("<IIQQ", 2, 0, size, 1) + payload)
    out = built.dir / f"funcs-zstd-{tag}"
    _run("objcopy", f"--update-section=.debug_info={blob}", built.exe_g, out)
    data = out.read_bytes()
    return _patch(data, _section_header_offset(data, ".debug_info") + 8, "<Q", 0x800)


@pytest.mark.parametrize("mode", ["identity", "real"])
def test_zstd_compressed_section(built: Built, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    # GIVEN a .debug_info marked ELFCOMPRESS_ZSTD, and a zstd module (the real one if
    # installed, else an identity stand-in that checks bee's glue code)
    _need("objcopy")
    with ElfFile.open(built.exe_g) as elf:
        sec = elf.section(".debug_info")
        assert sec is not None
        want = elf.section_data(sec)
    if mode == "real":
        zstandard = pytest.importorskip("zstandard")
        payload = zstandard.ZstdCompressor().compress(want)
    else:
        monkeypatch.setitem(sys.modules, "zstandard", _IdentityZstd)
        payload = want
    good = _zstd_elf(built, payload, len(want), mode)
    short = _zstd_elf(built, payload, len(want) + 10, mode + "-short")
    # WHEN we read the section
    with ElfFile.from_bytes(good, "zstd.elf") as elf:
        sec = elf.section(".debug_info")
        assert sec is not None and sec.flags & 0x800
        # THEN it decompresses to the original DWARF
        assert elf.section_data(sec) == want
    # AND a size mismatch with the compression header is an ElfError
    with ElfFile.from_bytes(short, "zstd.elf") as elf:
        sec = elf.section(".debug_info")
        assert sec is not None
        with pytest.raises(ElfError, match="header says"):
            elf.section_data(sec)


def test_oversized_section_refused_without_reading(built: Built) -> None:
    # GIVEN a section header claiming 2 GiB of data
    data = built.exe.read_bytes()
    with ElfFile.from_bytes(data, "x") as elf:
        idx = next(i for i, s in enumerate(elf.sections) if s.name == ".comment")
        shoff = struct.unpack_from("<Q", data, 0x28)[0]
    bad = _patch(data, shoff + idx * 64 + 32, "<Q", 2 << 30)  # sh_size
    # WHEN / THEN section_data refuses it
    with ElfFile.from_bytes(bad, "huge.elf") as elf:
        sec = elf.section(".comment")
        assert sec is not None and sec.size == 2 << 30
        with pytest.raises(ElfError, match="too large"):
            elf.section_data(sec)


# ----------------------------------------------------------- addresses and load biases


def test_file_offset_to_vaddr(built: Built) -> None:
    # GIVEN the PIE fixture and a function's file offset computed from its section
    with ElfFile.open(built.exe) as elf:
        text = elf.section(".text")
        assert text is not None
        for start, _size, name in table_entries(elf.functions()):
            if not text.addr <= start < text.addr + text.size:
                continue
            offset = text.offset + (start - text.addr)
            # WHEN / THEN mapping the offset through PT_LOAD gives the symbol address
            assert elf.file_offset_to_vaddr(offset) == start, name
        # AND offsets outside every PT_LOAD file range give None
        assert elf.file_offset_to_vaddr(10**9) is None
        assert elf.file_offset_to_vaddr(-1) is None


def _run_maps(path: Path) -> tuple[dict[str, int], list[tuple[int, int, bool]]]:
    """Run the fixture: (function runtime addresses, [(start, offset, executable)])."""
    out = _run(path, "maps")
    funcs: dict[str, int] = {}
    maps: list[tuple[int, int, bool]] = []
    real = os.path.realpath(path)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            funcs[parts[0]] = int(parts[1], 16)
        elif len(parts) >= 6 and parts[5] == real:
            start = int(parts[0].split("-")[0], 16)
            maps.append((start, int(parts[2], 16), "x" in parts[1]))
    return funcs, maps


@pytest.mark.parametrize(("which", "pie"), [("exe", True), ("exe_nopie", False)])
def test_load_bias_from_live_process_maps(built: Built, which: str, pie: bool) -> None:
    # GIVEN the fixture run as a process printing function addresses and its own maps
    path: Path = getattr(built, which)
    funcs, maps = _run_maps(path)
    assert len(maps) >= 3
    with ElfFile.open(path) as elf:
        table = elf.functions()
        syms = {name: start for start, _, name in table_entries(table)}
        true_bias = funcs["global_fn"] - syms["global_fn"]
        assert (true_bias != 0) == pie
        loads = [s for s in elf.segments if s.p_type == 1]
        for start, offset, executable in maps:
            # WHEN we compute the bias of each mapping, told whether it is executable
            bias = elf.load_bias_for(start, offset, executable=executable)
            # THEN it is the true bias, unless two PT_LOADs share this mapping's file
            # page (then start+offset alone cannot tell them apart; only non-exec ones)
            sharing = [s for s in loads if s.offset - s.offset % 4096 == offset]
            if executable or len(sharing) < 2:
                assert bias == true_bias, (hex(start), hex(offset))
            # AND without the hint, the executable mapping's bias is still right
            if executable:
                assert elf.load_bias_for(start, offset) == true_bias
    # AND runtime address - bias is the ELF address of each function
    for name in ("global_fn", "hot_with_cold", "weak_fn"):
        got = table.lookup(funcs[name] - true_bias)
        assert got is not None and got.start == funcs[name] - true_bias, name
        assert got.name == name


def test_load_bias_for_libc_in_this_process() -> None:
    # GIVEN libc mapped into the test process, and getpid's runtime address
    if not LIBC.is_file():
        pytest.skip("no libc")
    real = os.path.realpath(LIBC)
    maps = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.realpath(parts[5]) == real:
                maps.append((int(parts[0].split("-")[0], 16), int(parts[2], 16)))
    if not maps:
        pytest.skip("this python does not map the system libc")
    libc = ctypes.CDLL(str(LIBC))
    runtime = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    assert runtime is not None
    with ElfFile.open(LIBC) as elf:
        # WHEN we compute each mapping's bias
        biases = {elf.load_bias_for(start, offset) for start, offset in maps}
        assert len(biases) == 1
        bias = biases.pop()
        assert bias is not None
        # THEN runtime - bias is getpid's symbol value as readelf prints it
        getpid = [s for s in readelf_symbols(LIBC) if s.name == "getpid" and s.size]
        assert getpid and runtime - bias == getpid[0].value
        got = elf.functions().lookup(runtime - bias)
        assert got is not None and got.start == getpid[0].value


def test_load_bias_unknown_offset(built: Built) -> None:
    # GIVEN the fixture WHEN a mapping offset lies beyond every PT_LOAD THEN None
    with ElfFile.open(built.exe) as elf:
        assert elf.load_bias_for(0x5555_0000_0000, 1 << 40) is None


# ------------------------------------------------------------------- ELF32, big-endian


def test_elf32_little_endian_fixture(built: Built) -> None:
    # GIVEN a freestanding 32-bit executable (gcc -m32 -nostdlib: no 32-bit libc needed)
    path = built.dir / "tiny32"
    try:
        _gcc(
            path,
            "-m32",
            "-O2",
            "-nostdlib",
            "-static",
            "-Wl,-e,tiny_start",
            "-Wl,--build-id=sha1",
            src="tiny32.c",
        )
    except subprocess.CalledProcessError:
        pytest.skip("gcc -m32 unavailable")
    with ElfFile.open(path) as elf:
        # WHEN / THEN headers, tables, build-id and symbols match binutils
        assert not elf.is_64 and elf.little_endian
        assert elf.machine == EM_386 and elf.elf_type == ET_EXEC
        assert [(s.p_type, s.offset, s.vaddr, s.filesz, s.memsz) for s in elf.segments] == [
            (t, o, v, f, m) for t, _fl, o, v, f, m, _a in readelf_segments(path)
        ]
        _assert_sections_match(elf.sections, readelf_sections(path))
        assert elf.build_id == readelf_build_id(path)
        table = elf.functions()
    _assert_table_matches_symbols(table, readelf_symbols(path))
    addrs = [start + k for start, size, _ in table_entries(table) for k in range(size)]
    _agreed, mismatches = compare_with_addr2line(table, path, addrs)
    assert not mismatches, mismatches


def craft_elf(is_64: bool, little: bool, machine: int) -> bytes:
    """A minimal hand-made ELF: PT_LOAD + PT_NOTE, .text, build-id note, .symtab with
    a local size-0 function, a global function and a weak alias, and .gnu_debuglink."""
    e = "<" if little else ">"
    w = "Q" if is_64 else "I"
    ehsize, phentsize, shentsize = (64, 56, 64) if is_64 else (52, 32, 40)
    text_off, text_addr, text_size = 0x100, 0x10100, 0x40
    note = struct.pack(e + "III", 4, 20, 3) + b"GNU\0" + bytes(range(0xA0, 0xB4))
    note_off = text_off + text_size
    strtab = b"\0local_zero\0func_a\0func_alias\0"
    syms = [
        (0, 0, 0, 0, 0, 0),
        (1, 0x10120, 0, 0x02, 0, 1),  # LOCAL FUNC, size 0
        (12, 0x10100, 16, 0x12, 0, 1),
        (19, 0x10100, 16, 0x22, 0, 1),
    ]
    sym_fmt = e + ("IBBHQQ" if is_64 else "IIIBBH")
    symtab = b"".join(
        struct.pack(sym_fmt, n, i, o, s, v, z) if is_64 else struct.pack(sym_fmt, n, v, z, i, o, s)
        for n, v, z, i, o, s in syms
    )
    link = b"x.debug\0" + struct.pack(e + "I", 0x12345678)
    shstr = b"\0.text\0.note.gnu.build-id\0.symtab\0.strtab\0.gnu_debuglink\0.shstrtab\0"
    body = bytearray(0x100)
    body += bytes(range(text_size))
    body += note
    layout = {}
    for name, blob in (("symtab", symtab), ("strtab", strtab), ("link", link), ("shstr", shstr)):
        body += bytes(-len(body) % 8)
        layout[name] = len(body)
        body += blob
    body += bytes(-len(body) % 8)
    shoff = len(body)
    phoff = ehsize
    sh = [
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (1, 1, 6, text_addr, text_off, text_size, 0, 0, 16, 0),
        (7, 7, 2, text_addr + text_size, note_off, len(note), 0, 0, 4, 0),
        (26, 2, 0, 0, layout["symtab"], len(symtab), 4, 2, 8, len(symtab) // 4),
        (34, 3, 0, 0, layout["strtab"], len(strtab), 0, 0, 1, 0),
        (42, 1, 0, 0, layout["link"], len(link), 0, 0, 4, 0),
        (57, 3, 0, 0, layout["shstr"], len(shstr), 0, 0, 1, 0),
    ]
    sh_fmt = e + "II" + w * 4 + "II" + w * 2
    for name_off, typ, flags, addr, off, size, lk, info, align, ent in sh:
        body += struct.pack(sh_fmt, name_off, typ, flags, addr, off, size, lk, info, align, ent)
    load = (1, 5, 0, 0x10000, note_off + len(note), note_off + len(note), 0x1000)
    pnote = (4, 4, note_off, text_addr + text_size, len(note), len(note), 4)
    for i, (typ, flags, off, vaddr, filesz, memsz, align) in enumerate((load, pnote)):
        if is_64:
            ph = struct.pack(e + "IIQQQQQQ", typ, flags, off, vaddr, vaddr, filesz, memsz, align)
        else:
            ph = struct.pack(e + "8I", typ, off, vaddr, vaddr, filesz, memsz, flags, align)
        body[phoff + i * phentsize : phoff + (i + 1) * phentsize] = ph
    ident = b"\x7fELF" + bytes([2 if is_64 else 1, 1 if little else 2, 1]) + bytes(9)
    ehdr = ident + struct.pack(
        e + ("HHIQQQIHHHHHH" if is_64 else "HHIIIIIHHHHHH"),
        ET_EXEC,
        machine,
        1,
        text_addr,
        phoff,
        shoff,
        0,
        ehsize,
        phentsize,
        2,
        shentsize,
        len(sh),
        6,
    )
    body[:ehsize] = ehdr
    return bytes(body)


@pytest.mark.parametrize(
    ("is_64", "little", "machine"),
    [(True, False, 21), (False, False, 20), (False, True, 3), (True, True, 62)],
    ids=["elf64-be-ppc64", "elf32-be-ppc", "elf32-le", "elf64-le"],
)
def test_crafted_headers_all_classes_and_byte_orders(
    tmp_path: Path, is_64: bool, little: bool, machine: int
) -> None:
    # GIVEN a hand-made ELF of each class and byte order, written to disk
    _need("readelf")
    path = tmp_path / "crafted.elf"
    path.write_bytes(craft_elf(is_64, little, machine))
    with ElfFile.open(path) as elf:
        # WHEN / THEN our parse matches readelf's view of the same bytes
        assert (elf.is_64, elf.little_endian, elf.machine) == (is_64, little, machine)
        assert [
            (s.p_type, s.flags, s.offset, s.vaddr, s.filesz, s.memsz, s.align) for s in elf.segments
        ] == readelf_segments(path)
        _assert_sections_match(elf.sections, readelf_sections(path))
        assert elf.build_id == readelf_build_id(path) == bytes(range(0xA0, 0xB4)).hex()
        assert elf.debuglink == ("x.debug", 0x12345678)
        assert elf.file_offset_to_vaddr(0x100) == 0x10100
        table = elf.functions()
    _assert_table_matches_symbols(table, readelf_symbols(path))
    # AND the local size-0 symbol runs to the end of .text; LOCAL sorts first but the
    # GLOBAL/WEAK aliases have a size, so func_a (first of those) names their range
    assert table.lookup(0x10105) == Symbol("func_a", 0x10100, 16)
    assert table.lookup(0x1013F) == Symbol("local_zero", 0x10120, 0x20)
    assert table.lookup(0x10110) is None


# ------------------------------------------------------------------ caching the table


def test_function_table_arrays_roundtrip_through_msgpack(built: Built) -> None:
    # GIVEN the fixture table turned into plain arrays and through msgpack
    with ElfFile.open(built.exe) as elf:
        table = elf.functions()
    packed = msgpack.packb(table.to_arrays())
    # WHEN we rebuild it
    again = FunctionTable.from_arrays(msgpack.unpackb(packed))
    # THEN it answers every lookup identically
    assert len(again) == len(table) > 10
    for start, size, _ in table_entries(table):
        for addr in (start - 1, start, start + size - 1, start + size):
            assert again.lookup(addr) == table.lookup(addr)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"starts": [1], "sizes": [1]},
        {"starts": [1, 2], "sizes": [1], "names": ["a"]},
        {"starts": [2, 1], "sizes": [1, 1], "names": ["a", "b"]},
        {"starts": [1], "sizes": [0], "names": ["a"]},
        {"starts": [-1], "sizes": [1], "names": ["a"]},
        {"starts": [1 << 64], "sizes": [1], "names": ["a"]},
        {"starts": [1], "sizes": [1], "names": [b"a"]},
        {"starts": "x", "sizes": [1], "names": ["a"]},
        {"starts": [1, 1], "sizes": [4, 4], "names": ["a", "b"]},
    ],
)
def test_function_table_from_bad_arrays(data: dict[str, object]) -> None:
    # GIVEN an inconsistent cached table WHEN rebuilt THEN ElfError (a BeeError)
    with pytest.raises(ElfError):
        FunctionTable.from_arrays(data)


def test_nested_symbols_resolve_to_innermost_then_enclosing() -> None:
    # GIVEN a big function containing a smaller one that does not reach its end
    table = FunctionTable.from_arrays(
        {
            "starts": [0x100, 0x100, 0x140],
            "sizes": [0x100, 0x10, 0x20],
            "names": ["outer", "same_start_small", "inner"],
        }
    )
    # WHEN / THEN each address gets the innermost range that contains it
    assert _name_at(table, 0x105) == "same_start_small"
    assert _name_at(table, 0x110) == "outer"
    assert _name_at(table, 0x150) == "inner"
    assert _name_at(table, 0x160) == "outer"
    assert _name_at(table, 0x1FF) == "outer"
    assert table.lookup(0x200) is None


# -------------------------------------------------------------------- untrusted input


def test_open_errors_are_elf_errors(tmp_path: Path) -> None:
    # GIVEN a missing path, a directory, an empty file and a text file
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    text = tmp_path / "text"
    text.write_text("hello, not an ELF\n")
    for path in (tmp_path / "missing", tmp_path, empty, text):
        # WHEN / THEN opening raises a one-line ElfError naming the path
        with pytest.raises(ElfError) as info:
            ElfFile.open(path)
        assert str(path) in str(info.value)
        assert isinstance(info.value, BeeError)


def test_closed_file_raises_elf_error(built: Built) -> None:
    # GIVEN a file closed by leaving its context
    with ElfFile.open(built.exe) as elf:
        sec = elf.section(".text")
        assert sec is not None
    # WHEN / THEN further reads raise ElfError, and close is idempotent
    with pytest.raises(ElfError, match="closed"):
        elf.section_data(sec)
    with pytest.raises(ElfError, match="closed"):
        elf.functions()
    elf.close()


def test_from_bytes_equals_open(built: Built) -> None:
    # GIVEN the same ELF opened from disk and from memory
    with ElfFile.open(built.exe) as a:
        b = ElfFile.from_bytes(built.exe.read_bytes(), "mem")
        # THEN everything parsed is identical
        assert (a.sections, a.segments, a.build_id) == (b.sections, b.segments, b.build_id)
        assert table_entries(a.functions()) == table_entries(b.functions())


def _hdr(data: bytes) -> tuple[int, int, int, int]:
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    _phnum, _, shnum, shstrndx = struct.unpack_from("<HHHH", data, 0x38)
    return phoff, shoff, shnum, shstrndx


def _section_header_offset(data: bytes, name: str) -> int:
    with ElfFile.from_bytes(data, "x") as elf:
        idx = next(i for i, s in enumerate(elf.sections) if s.name == name)
    return _hdr(data)[1] + idx * 64


def _malformations(data: bytes) -> Iterator[tuple[str, bytes, str]]:
    """(label, bytes, expected message fragment) for structurally bad variants."""
    _, shoff, shnum, _ = _hdr(data)
    symtab = _section_header_offset(data, ".symtab")
    yield "bad magic", b"\x7fELG" + data[4:], "not an ELF"
    yield "bad class", data[:4] + b"\x09" + data[5:], "class"
    yield "bad data encoding", data[:5] + b"\x07" + data[6:], "encoding"
    yield "shnum huge", _patch(data, 0x3C, "<H", 0xFFFE), "outside the file"
    yield "shoff past end", _patch(data, 0x28, "<Q", len(data) + 8), "outside the file"
    yield "shoff 2^63", _patch(data, 0x28, "<Q", 1 << 63), "outside the file"
    yield "phnum huge", _patch(data, 0x38, "<H", 0xFFFE), "outside the file"
    yield "phentsize small", _patch(data, 0x36, "<H", 8), "too small"
    yield "shentsize small", _patch(data, 0x3A, "<H", 8), "too small"
    yield "shstrndx out of range", _patch(data, 0x3E, "<H", shnum + 3), "out of range"
    zero_count = _patch(_patch(data, 0x3C, "<H", 0), shoff + 32, "<Q", 1 << 40)
    yield "section 0 claims 2^40 sections", zero_count, "outside the file"
    yield "symtab size 2^62", _patch(data, symtab + 32, "<Q", 1 << 62), "too large"
    yield "symtab past end", _patch(data, symtab + 24, "<Q", len(data) - 8), "outside"
    yield "symtab link bad", _patch(data, symtab + 40, "<I", 9999), "string table"
    yield "symtab entsize 1", _patch(data, symtab + 56, "<Q", 1), "entry size"
    strtab = _section_header_offset(data, ".strtab")
    yield "strtab size 1", _patch(data, strtab + 32, "<Q", 1), "name offset"


def test_malformed_structures_raise_elf_error(built: Built) -> None:
    # GIVEN the fixture with one header field at a time set to nonsense
    data = built.exe.read_bytes()
    for label, bad, fragment in _malformations(data):
        # WHEN we open it and read everything
        # THEN a one-line ElfError naming the file and the problem is raised
        with (
            pytest.raises(ElfError, match=fragment) as info,
            ElfFile.from_bytes(bad, "bad.elf") as elf,
        ):
            elf.functions()
        msg = str(info.value)
        assert msg.startswith("bad.elf: ") and "\n" not in msg, (label, msg)


def test_truncated_files(built: Built, tmp_path: Path) -> None:
    # GIVEN the fixture cut at many lengths, including every header/section boundary
    data = built.exe.read_bytes()
    with ElfFile.from_bytes(data, "x") as elf:
        cuts = {s.offset + d for s in elf.sections for d in (-1, 0, 1)}
        cuts |= {s.offset + s.size for s in elf.sections}
        cuts |= {s.offset + d for s in elf.segments for d in (0, 1)}
    cuts |= set(range(0, 130)) | set(random.Random(7).sample(range(len(data)), 100))
    cuts |= {_hdr(data)[1] + k for k in (0, 1, 63, 64, 65, 200)}
    raised = 0
    for n in sorted(c for c in cuts if 0 <= c < len(data)):
        # WHEN we read the prefix through every API (from memory, and from disk)
        try:
            exercise(data[:n], "cut.elf")
        except ElfError:  # pragma: no cover - exercise() swallows ElfError
            raise
        path = tmp_path / "cut.elf"
        path.write_bytes(data[:n])
        # THEN only ElfError is ever raised (and section headers at the end make most
        # cuts fatal)
        try:
            ElfFile.open(path).close()
        except ElfError:
            raised += 1
    assert raised > 100


def _hot_offsets(data: bytes) -> list[int]:
    """Byte offsets of structure fields: headers, tables, symbols, notes."""
    offs = list(range(4, 64))  # not the magic: that only tests "not an ELF"
    phoff, shoff, shnum, _ = _hdr(data)
    offs += range(phoff, phoff + 13 * 56)
    offs += range(shoff, shoff + shnum * 64)
    with ElfFile.from_bytes(data, "x") as elf:
        for name in (
            ".symtab",
            ".dynsym",
            ".note.gnu.build-id",
            ".gnu_debuglink",
            ".debug_info",
            ".gnu_debugdata",
        ):
            sec = elf.section(name)
            if sec is not None and sec.sh_type != 8:
                offs += range(sec.offset, min(sec.offset + sec.size, sec.offset + 600))
    return [o for o in offs if o < len(data)]


@pytest.fixture(scope="session")
def fuzz_targets(built: Built) -> dict[str, bytes]:
    d = built.dir / "fuzz"
    d.mkdir(exist_ok=True)
    targets = {"exe": built.exe.read_bytes()}
    gz = _gcc(d / "gz", "-O2", "-g", "-gz=zlib")
    targets["gz"] = gz.read_bytes()
    if shutil.which("xz") and shutil.which("objcopy"):
        shutil.copy(built.exe, d / "prog")
        _run("objcopy", "--only-keep-debug", "prog", "mini", cwd=d)
        _run("xz", "-f", "mini", cwd=d)
        _run("strip", "--strip-all", "prog", cwd=d)
        _run("objcopy", "--add-section", ".gnu_debugdata=mini.xz", "prog", cwd=d)
        targets["minidebug"] = (d / "prog").read_bytes()
    return targets


@st.composite
def _mutations(draw: st.DrawFn, data: bytes, hot: list[int]) -> bytes:
    buf = bytearray(data)
    count = draw(st.integers(1, 8))
    for _ in range(count):
        pos = draw(st.sampled_from(hot) | st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["byte", "bit", "ff", "zero"]))
        if kind == "byte":
            buf[pos] = draw(st.integers(0, 255))
        elif kind == "bit":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        else:
            end = min(len(buf), pos + 8)
            buf[pos:end] = (b"\xff" if kind == "ff" else b"\0") * (end - pos)
    return bytes(buf)


@pytest.mark.parametrize("target", ["exe", "gz", "minidebug"])
def test_random_corruption_only_raises_elf_error(
    fuzz_targets: dict[str, bytes], target: str
) -> None:
    # GIVEN a valid fixture image, corrupted at random (biased to structure fields)
    if target not in fuzz_targets:
        pytest.skip("xz/objcopy missing")
    data = fuzz_targets[target]
    hot = _hot_offsets(data)

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_mutations(data, hot))
    def check(mutated: bytes) -> None:
        # WHEN every API reads it THEN it succeeds or raises ElfError, nothing else
        exercise(mutated, "fuzz.elf")

    check()

"""Hostile debug files (issue 15): DWARF that crashes or floods the DWARF engine, and
refusals that must say what is wrong. Each ends in one warning and names-only frames."""

from __future__ import annotations

import lzma
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bee_contract.elf import ElfLayout
from bee_contract.errors import ElfError
from bee_report.elf.elffile import ElfFile
from tests.conftest import run_bee
from tests.debug_helpers import run
from tests.test_report_cli import _recording_of

_ABBREV = """\
.section .debug_abbrev,"",@progbits
.uleb128 1, 0x11
.byte 1
.uleb128 0x03, 0x08, 0x13, 0x0b, 0x11, 0x01, 0x12, 0x06
.byte 0, 0
.uleb128 2, 0x2e
.byte 1
.uleb128 0x03, 0x08, 0x11, 0x01, 0x12, 0x06
.byte 0, 0
.uleb128 3, 0x2e
.byte 0
.uleb128 0x03, 0x08, 0x20, 0x0b
.byte 0, 0
.uleb128 4, 0x1d
.byte 1
.uleb128 0x31, 0x13, 0x11, 0x01, 0x12, 0x06
.byte 0, 0
.byte 0
"""


def nested_inline_bomb(folder: Path, depth: int = 10_000) -> Path:
    """A ~200 KB executable whose `main` holds `depth` nested DW_TAG_inlined_subroutines."""
    inlined = ".uleb128 4\n.long .Lg-.Linfo\n.quad main\n.long .Lend-main\n" * depth
    asm = (".text\n.globl main\n.type main,@function\nmain:\n xor %eax,%eax\n"
           + " nop\n" * 16 + " ret\n.Lend:\n"
           ".size main,.-main\n" + _ABBREV +
           '.section .debug_info,"",@progbits\n.Linfo:\n.long .Linfo_end-.Linfo-4\n'
           ".short 4\n.long 0\n.byte 8\n"
           '.uleb128 1\n.asciz "bomb.c"\n.byte 12\n.quad main\n.long .Lend-main\n'
           '.Lg:\n.uleb128 3\n.asciz "g"\n.byte 3\n'
           '.uleb128 2\n.asciz "main"\n.quad main\n.long .Lend-main\n'
           + inlined + ".byte 0\n" * (depth + 2) + ".Linfo_end:\n")
    src, out = folder / "bomb.s", folder / "bomb"
    src.write_text(asm)
    run("gcc", "-nostartfiles", "-nostdlib", "-Wl,-e,main", "-Wl,--build-id", "-o", out, src)
    return out


def _patch_section(path: Path, name: str, **fields: int) -> None:
    """Rewrite fields (offset, size) of section `name`'s header, or its ch_size."""
    data = bytearray(path.read_bytes())
    elf = ElfFile.from_bytes(bytes(data), str(path))
    lay = ElfLayout(elf.is_64, elf.little_endian)
    shoff, shentsize = lay.ehdr.unpack_from(data, 16)[5], lay.ehdr.unpack_from(data, 16)[10]
    index = next(i for i, s in enumerate(elf.sections) if s.name == name)
    row = list(lay.shdr.unpack_from(data, shoff + index * shentsize))
    if "size" in fields:
        row[5] = fields["size"]
    lay.shdr.pack_into(data, shoff + index * shentsize, *row)
    if "ch_size" in fields:
        struct.pack_into("<Q", data, elf.sections[index].offset + 8, fields["ch_size"])
    path.write_bytes(bytes(data))


def _main_address(binary: Path) -> str:
    nm = subprocess.run(["nm", str(binary)], capture_output=True, text=True, check=True).stdout
    return next(line.split()[0] for line in nm.splitlines() if line.endswith(" main"))


def test_nested_inline_bomb_is_one_warning_and_names_only(tmp_path: Path) -> None:
    # GIVEN a 200 KB binary with 10,000 nested inlined subroutines
    bomb = nested_inline_bomb(tmp_path)
    assert bomb.stat().st_size < 300_000
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    # WHEN symbolized THEN the DWARF engine's crash is one warning; names come from .symtab
    result = run_bee("symbolize", "-e", bomb, _main_address(bomb), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "main"
    assert result.stderr.count("warning") == 1 and "crashed" in result.stderr, result.stderr
    # and `bee report` of a recording of it too
    report = run_bee("report", _recording_of(bomb, tmp_path), "-f", "folded", env=env)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("prog;main ") and "crashed" in report.stderr


def _built(build_c: Callable[..., Path], *flags: str) -> Path:
    return build_c("chain.c", name="prog", flags=flags)


@pytest.mark.parametrize("how", ["compressed 1 TiB", "uncompressed 1 TB"])
def test_huge_debug_section_claims_are_refused_with_a_warning(
        build_c: Callable[..., Path], tmp_path: Path, how: str) -> None:
    # GIVEN a debug section claiming 1 TiB, compressed or not
    if how.startswith("compressed"):
        prog = _built(build_c, "-gz=zlib")
        _patch_section(prog, ".debug_info", ch_size=1 << 40)
    else:
        prog = _built(build_c)
        _patch_section(prog, ".debug_info", size=10**12)
    # WHEN symbolized THEN one warning says which section is refused, names still print
    result = run_bee("symbolize", "--no-cache", "-e", prog, _main_address(prog))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "main"
    assert result.stderr.count("warning") == 1, result.stderr
    assert "section .debug_info" in result.stderr and "too large" in result.stderr


def test_huge_minidebuginfo_is_refused_early(build_c: Callable[..., Path],
                                            tmp_path: Path) -> None:
    # GIVEN a stripped binary whose .gnu_debugdata inflates to 300 MiB
    prog = _built(build_c)
    run("strip", prog)
    packed = tmp_path / "mini.xz"
    packed.write_bytes(lzma.compress(bytes(300 << 20), preset=1))
    run("objcopy", "--add-section", f".gnu_debugdata={packed}", prog)
    # WHEN its symbols are read THEN it is refused with one line, before inflating it all
    with ElfFile.open(prog) as elf, pytest.raises(ElfError) as exc:
        elf.gnu_debugdata()
    assert ".gnu_debugdata: decompresses to more than" in str(exc.value)


@pytest.mark.parametrize(("path", "says"), [("/dev/zero", "not a regular file"),
                                            ("/", "is a directory"),
                                            ("/nonexistent", "no such file")])
def test_symbolize_says_what_is_wrong_with_the_exe(path: str, says: str,
                                                   cli: Callable[..., Any]) -> None:
    result = cli("symbolize", "-e", path, "0x1000")
    assert result.exit_code != 0
    assert result.stderr == f"bee: {path}: {says}\n"


def test_an_untrusted_symbols_folder_cannot_poison_the_cache(
        build_c: Callable[..., Path], tmp_path: Path) -> None:
    # GIVEN a genuine binary, and an untrusted folder holding a copy with the same build-id
    # whose symbol and DWARF names say "pwnd" instead of "main"
    prog = _built(build_c)
    rec = _recording_of(prog, tmp_path)
    fake = tmp_path / "untrusted" / "prog"
    fake.parent.mkdir()
    fake.write_bytes(prog.read_bytes().replace(b"main\0", b"pwnd\0"))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    poisoned = run_bee("report", rec, "-f", "folded", "--lines", "--symbols", fake.parent,
                       env=env)
    assert "pwnd" in poisoned.stdout, poisoned.stderr
    # WHEN reported later without that folder, with the cache it filled
    later = run_bee("report", rec, "-f", "folded", "--lines", env=env)
    # THEN the genuine binary answers, as without any cache
    truth = run_bee("report", rec, "-f", "folded", "--lines", "--no-cache", env=env)
    assert "main" in truth.stdout and "pwnd" not in truth.stdout
    assert later.stdout == truth.stdout, later.stderr

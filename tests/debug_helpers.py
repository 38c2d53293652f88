"""Build a small C program at test time and split its debug info the way distributions do.

``build_split(folder, variant)`` compiles ``PROGRAM`` with ``gcc -g``, then makes
``prog.debug`` (``objcopy --only-keep-debug``), strips the debug sections from ``prog``
(``strip --strip-debug``) and links them (``objcopy --add-gnu-debuglink``). A different
``variant`` changes the code, so the build-id differs.
"""

from __future__ import annotations

import lzma
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from bee_contract.buildid import build_id_of_path

PROGRAM = r"""
#include <stdio.h>

__attribute__((noinline)) static int bee_static_helper(int x)
{
    return x * VARIANT + 1;
}

__attribute__((noinline)) int bee_exported(int x)
{
    return bee_static_helper(x) + 2;
}

int main(int argc, char **argv)
{
    (void)argv;
    printf("%d\n", bee_exported(argc));
    return 0;
}
"""


@dataclass(frozen=True)
class Split:
    """A built program: the full build, the stripped binary and its debug file."""

    full: Path  # unstripped, with DWARF
    binary: Path  # debug sections stripped, .gnu_debuglink to `debug`'s name
    debug: Path  # objcopy --only-keep-debug output
    build_id: str
    crc: int  # CRC32 of `debug`, as stored in the debuglink


def run(*cmd: str | Path) -> None:
    """Run a tool; a missing tool fails the test with its name."""
    if shutil.which(str(cmd[0])) is None:
        pytest.fail(f"{cmd[0]} is required (binutils/gcc)")
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


def build_split(folder: Path, variant: int = 3, name: str = "prog") -> Split:
    """Compile PROGRAM in `folder` and split its debug info (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"{name}.c"
    src.write_text(PROGRAM)
    full = folder / f"{name}.full"
    run("gcc", "-g", "-O0", f"-DVARIANT={variant}", "-Wl,--build-id=sha1", "-o", full, src)
    binary = folder / name
    debug = folder / f"{name}.debug"
    shutil.copyfile(full, binary)
    run("objcopy", "--only-keep-debug", binary, debug)
    run("strip", "--strip-debug", binary)
    run("objcopy", f"--add-gnu-debuglink={debug}", binary)
    build_id = build_id_of_path(str(binary))
    assert build_id is not None and build_id == build_id_of_path(str(debug))
    return Split(full, binary, debug, build_id, zlib.crc32(debug.read_bytes()))


def with_minidebuginfo(split: Split, out: Path) -> Path:
    """A fully stripped copy of the binary carrying `.gnu_debugdata` (MiniDebugInfo).

    As Fedora does: the debug file's symbol table without DWARF, xz-compressed, added as a
    section of the binary stripped of its `.symtab`.
    """
    mini = out.with_suffix(".mini")
    run("objcopy", "--strip-debug", "--remove-section=.comment", split.debug, mini)
    xz = out.with_suffix(".mini.xz")
    xz.write_bytes(lzma.compress(mini.read_bytes(), format=lzma.FORMAT_XZ))
    shutil.copyfile(split.binary, out)
    run("strip", "--strip-all", out)
    run("objcopy", f"--add-section=.gnu_debugdata={xz}", out)
    return out

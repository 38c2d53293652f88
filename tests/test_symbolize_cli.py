"""`bee symbolize` against binutils `addr2line -a -f -i -C`, line by line, through the CLI.

Random addresses inside functions of our C, C++ and Rust fixtures and of the distro's libc
(with libc6-dbg's debug file found by build-id, as `bee report` finds it). Thresholds from
the issue: 99% outermost function names, 97% innermost file:line, 95% whole inline chains.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_bee
from tests.test_dwarf import LIBC, Chain, agreement, built, libc_debug_file, random_addresses

__all__ = ["built"]  # the session fixture that compiles tests/fixtures/dwarf sources

_ADDR = re.compile(r"^0x[0-9a-f]{16}$")


def parse(text: str) -> dict[int, Chain]:
    """addr2line -a -f -i layout back into chains (innermost first)."""
    lines = text.splitlines()
    out: dict[int, Chain] = {}
    i = 0
    while i < len(lines):
        assert _ADDR.match(lines[i]), lines[i]
        addr, i, frames = int(lines[i], 16), i + 1, []
        while i < len(lines) and not _ADDR.match(lines[i]):
            file, _, line = lines[i + 1].rpartition(":")
            frames.append((None if lines[i] == "??" else lines[i],
                           None if file == "??" else file,
                           None if line in ("?", "0") else int(line)))
            i += 2
        out[addr] = () if frames == [(None, None, None)] else tuple(frames)
    return out


def bee_symbolize(path: Path, addrs: list[int], tmp: Path) -> dict[int, Chain]:
    rec = run_bee("symbolize", "-e", path, "--no-cache",
                  input="".join(f"{a:x}\n" for a in addrs))
    assert rec.returncode == 0, rec.stderr
    got = parse(rec.stdout)
    assert list(got) == list(dict.fromkeys(addrs))
    return got


@pytest.mark.parametrize("name", ["c-dwarf5-gz", "cpp-dwarf5", "rust-dwarf4"])
def test_fixture_agrees_with_addr2line(built: Callable[[str], Path], name: str,
                                       tmp_path: Path) -> None:
    # GIVEN a fixture with inlining, and 400 random addresses inside its functions
    path = built(name)
    addrs = random_addresses(path, 400, seed=7)
    # WHEN bee symbolize and addr2line name them
    result = agreement(path, addrs, bee_symbolize(path, addrs, tmp_path))
    print(result.report(name))
    # THEN they agree within the thresholds
    assert result.outer >= 0.99 and result.inner >= 0.97 and result.chains >= 0.95


def test_libc_agrees_with_addr2line_via_debug_file_lookup(tmp_path: Path) -> None:
    if libc_debug_file() is None:
        pytest.fail("libc6-dbg is required (scripts/setup.sh installs it)")
    # GIVEN the stripped distro libc: names and lines come from the debug file found by
    # build-id under /usr/lib/debug, as bee report finds it
    addrs = random_addresses(libc_debug_file() or LIBC, 1000, seed=11)
    result = agreement(LIBC, addrs, bee_symbolize(LIBC, addrs, tmp_path))
    print(result.report("libc"))
    assert result.outer >= 0.99 and result.inner >= 0.97 and result.chains >= 0.95


def test_bad_address_is_one_line() -> None:
    rec = run_bee("symbolize", "-e", LIBC, "xyz")
    assert rec.returncode != 0
    assert rec.stderr.strip() == "bee: 'xyz' is not a hexadecimal address"


def test_missing_binary_is_one_line(tmp_path: Path) -> None:
    rec = run_bee("symbolize", "-e", tmp_path / "nope", "1000")
    assert rec.returncode != 0 and rec.stderr.count("\n") == 1 and "no such file" in rec.stderr

"""Kernel symbols on the target: only the needed kallsyms entries, parsed correctly."""

from __future__ import annotations

from pathlib import Path

import pytest

from bee_contract.recording import KernelSymbol
from bee_record import kallsyms

FAKE = b"""ffffffff81000000 T _stext
ffffffff81000100 t helper
ffffffff81000200 D some_data
ffffffffc0001000 t mod_func\t[mymod]
ffffffff81000300 W weak_func
0000000000000000 A fixed_percpu_data
ffffffff81000050 T early
"""


def test_text_symbols_sorted_with_modules(tmp_path: Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_bytes(FAKE)
    table = kallsyms.read_kallsyms(str(path))
    assert [s.name for s in table] == ["_stext", "early", "helper", "weak_func", "mod_func"]
    assert table[-1] == KernelSymbol(0xFFFFFFFFC0001000, "mod_func", "mymod")


def test_needed_symbols_cover_addresses_and_their_successors(tmp_path: Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_bytes(FAKE)
    table = kallsyms.read_kallsyms(str(path))
    got = kallsyms.needed_symbols(table, [0xFFFFFFFF81000120, 0xFFFFFFFFC0001010])
    assert [s.name for s in got] == ["helper", "weak_func", "mod_func"]


def test_hidden_addresses_give_nothing(tmp_path: Path) -> None:
    path = tmp_path / "kallsyms"
    path.write_bytes(b"0000000000000000 T _stext\n0000000000000000 t helper\n")
    assert kallsyms.read_kallsyms(str(path)) == []
    assert kallsyms.read_kallsyms(str(tmp_path / "missing")) == []


def test_kernel_info_names_live_kernel_addresses() -> None:
    # GIVEN the running kernel's own table (root sees real addresses)
    table = kallsyms.read_kallsyms()
    if not table:
        pytest.skip("kallsyms addresses are hidden for this user (kptr_restrict)")
    target = table[len(table) // 2]
    info = kallsyms.kernel_info([target.address + 1])
    assert target.address in {s.address for s in info.symbols}
    assert info.release and len(info.symbols) <= 2

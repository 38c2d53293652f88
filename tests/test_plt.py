"""PLT stubs are named `name@plt` as objdump names them, in `bee symbolize` and `bee report`."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee_contract import codec
from bee_contract.buildid import build_id_of_path
from bee_contract.errors import BeeError
from bee_contract.recording import Binary, Mapping, Process, Sample
from bee_report.elf.elffile import ElfFile
from bee_report.elf.plt import plt_functions
from formats.make_sample import sample_recording

LINKS = {
    "lazy": ("-Wl,-z,lazy", "-fcf-protection=none"),
    "now": ("-Wl,-z,now", "-fcf-protection=none"),
    "ibt-lazy": ("-Wl,-z,lazy", "-fcf-protection=full", "-Wl,-z,ibtplt"),
    "ibt-now": ("-Wl,-z,now", "-fcf-protection=full", "-Wl,-z,ibtplt"),
    "no-pie-ibt": ("-no-pie", "-fcf-protection=full", "-Wl,-z,ibtplt"),
}
_STUB = re.compile(r"^([0-9a-f]+) <(.*@plt)>:", re.M)


def objdump_stubs(binary: Path) -> dict[int, str]:
    """Address -> name of every PLT stub objdump names."""
    out = subprocess.run(["objdump", "-d", "-j", ".plt", "-j", ".plt.sec", "-j", ".plt.got",
                          str(binary)], capture_output=True, text=True, check=True).stdout
    return {int(m[1], 16): m[2] for m in _STUB.finditer(out)}


@pytest.fixture(params=[*LINKS, "/usr/bin/xz"])
def binary(request: pytest.FixtureRequest, build_c: Callable[..., Path]) -> Path:
    if request.param.startswith("/"):
        return Path(request.param)
    return build_c("plt.c", name=f"plt-{request.param}", flags=LINKS[request.param])


def test_stubs_are_the_ones_objdump_names(binary: Path) -> None:
    # GIVEN a binary linked one of the ways that shape its PLT sections
    expected = objdump_stubs(binary)
    assert len(expected) >= 5
    # WHEN its PLT stubs are read THEN they are objdump's, at the same addresses
    with ElfFile.open(binary) as elf:
        table = plt_functions(elf).to_arrays()
    assert dict(zip(table["starts"], table["names"], strict=True)) == expected


def test_symbolize_names_stubs(binary: Path, cli: Callable[..., Any]) -> None:
    # GIVEN the addresses of each stub's first and last byte
    expected = objdump_stubs(binary)
    with ElfFile.open(binary) as elf:
        sizes = dict(zip(*(plt_functions(elf).to_arrays()[k] for k in ("starts", "sizes")),
                         strict=True))
    addresses = [a for start in expected for a in (start, start + sizes[start] - 1)]
    # WHEN symbolized
    result = cli("symbolize", "--no-cache", "-e", binary, *(hex(a) for a in addresses))
    assert result.exit_code == 0, result.stderr
    # THEN each is named after its stub, as objdump names it
    names = result.stdout.splitlines()[1::3]
    assert names == [name for name in expected.values() for _ in (0, 1)]


def test_report_names_a_sample_in_a_stub(build_c: Callable[..., Path], tmp_path: Path,
                                         cli: Callable[..., Any]) -> None:
    # GIVEN a recording with a sample in memcmp's PLT stub (IBT: in .plt.sec)
    prog = build_c("plt.c", name="prog", flags=LINKS["ibt-lazy"])
    stub = next(a for a, n in objdump_stubs(prog).items() if n == "memcmp@plt")
    base = 0x555555554000
    build_id = build_id_of_path(str(prog))
    proc = Process(pid=10, generation=0, ns_pid=10, ppid=1, comm="prog", exe=str(prog),
                   cmdline=None, maps=(Mapping(base, base + 0x100000, 0, 0, 0, str(prog), 0),))
    rec = dataclasses.replace(
        sample_recording(), binaries=(Binary(str(prog), build_id, 0),), processes=(proc,),
        stacks=((base + stub + 4,),), samples=(Sample(0, 10, 0, "prog", 0, -1, 5, 5),))
    path = tmp_path / "prog.bee"
    codec.write(rec, path)
    # WHEN reported THEN the frame is named as perf and objdump name it
    result = cli("report", path, "-f", "folded", "--no-cache")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "prog;memcmp@plt 5\n"


def _plt_regions(binary: Path) -> list[tuple[int, int]]:
    with ElfFile.open(binary) as elf:
        return [(s.offset, s.size) for s in elf.sections
                if s.name in (".plt", ".plt.sec", ".plt.got", ".rela.plt", ".rela.dyn",
                              ".dynsym", ".dynstr")] + [(0, 64)]


@pytest.fixture(scope="module")
def ibt_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[tuple[int, int]]]:
    out = tmp_path_factory.mktemp("plt") / "prog"
    subprocess.run(["gcc", *LINKS["ibt-lazy"], "-o", str(out),
                    str(Path(__file__).parent / "fixtures" / "src" / "plt.c")], check=True)
    return out.read_bytes(), _plt_regions(out)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 1 << 20),
                                st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_plt_and_relocations_never_give_a_traceback(
    ibt_image: tuple[bytes, list[tuple[int, int]]], flips: list[tuple[int, int, int]]
) -> None:
    # GIVEN a binary whose PLT, relocations, dynamic symbols or header bytes are damaged
    image, regions = ibt_image
    data = bytearray(image)
    for region, offset, value in flips:
        start, size = regions[region % len(regions)]
        data[start + offset % max(size, 1)] = value
    # WHEN its stubs are read THEN they come out, or one ElfError says what is wrong
    try:
        with ElfFile.from_bytes(data, "prog") as elf:
            plt_functions(elf).lookup(0x1090)
    except BeeError:
        pass

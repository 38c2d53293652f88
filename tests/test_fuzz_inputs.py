"""Untrusted archives and debug files: mutated inputs never give a traceback.

Bounded hypothesis runs for CI; `fuzz/fuzz_archive.py` and `fuzz/fuzz_elf.py` are the
atheris targets for longer runs (counts in the README's testing section).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee_contract.errors import BeeError
from bee_contract.safeopen import pseudo_devices
from bee_contract.text import _UNSAFE, for_terminal
from bee_record.collect import parse_perf_map
from bee_record.procs import parse_maps
from bee_report.dwarf.lines import DebugInfo
from bee_report.find.unpack import symbols_from_archive
from tests.conftest import SRC

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _tar_gz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in ((".build-id/ab/cdef", b"\x7fELF" + b"\0" * 60),
                           ("MANIFEST.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _raw_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("x/y")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


TARGZ, TAR = _tar_gz(), _raw_tar()


@FUZZ
@given(base=st.sampled_from([TARGZ, TAR]),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=6),
       cut=st.integers(0, 12_000))
def test_mutated_archives(tmp_path_factory: Any, base: bytes, flips: list[tuple[int, int]],
                          cut: int) -> None:
    data = bytearray(base[:cut] if cut < len(base) else base)
    for pos, mask in flips:
        if data:
            data[pos % len(data)] ^= mask
    tmp = tmp_path_factory.mktemp("a")
    path = tmp / "x.tar.gz"
    path.write_bytes(bytes(data))
    try:
        folder = symbols_from_archive(path, tmp / "cache")
    except BeeError:
        return
    # anything extracted stays inside the extraction folder
    for p in folder.rglob("*"):
        assert p.resolve().is_relative_to(folder.resolve())


@pytest.fixture(scope="module")
def dwarf_binary(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("d") / "chain"
    subprocess.run(["gcc", "-O1", "-g", "-o", str(out), str(SRC / "chain.c")], check=True)
    return out.read_bytes()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), min_size=1,
                      max_size=10))
def test_mutated_dwarf(tmp_path_factory: Any, dwarf_binary: bytes,
                       flips: list[tuple[int, int]]) -> None:
    # GIVEN a binary with DWARF whose bytes are flipped (mostly inside the debug sections)
    data = bytearray(dwarf_binary)
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    path = tmp_path_factory.mktemp("m") / "m"
    path.write_bytes(bytes(data))
    # WHEN loaded and looked up THEN only a BeeError may come out
    try:
        info = DebugInfo.load(path, None, None)
        if info is not None:
            for addr in range(0x1000, 0x1400, 7):
                info.lookup(addr)
    except BeeError:
        pass


@FUZZ
@given(text=st.text(max_size=300))
def test_terminal_text_holds_no_control_character(text: str) -> None:
    # any recorded string, once escaped, has no control character and keeps printable text
    shown = for_terminal(text)
    assert not _UNSAFE.search(shown)
    if not _UNSAFE.search(text):
        assert shown == text


_MOUNT_LINE = st.builds(
    lambda a, b, major, minor, fs: f"{a} {b} {major}:{minor} / /m rw - {fs} src rw\n",
    st.integers(0, 999), st.integers(0, 999), st.integers(0, 4095), st.integers(0, 1 << 20),
    st.sampled_from(["proc", "sysfs", "ext4", "tmpfs", "tracefs", "x y", ""]))


@FUZZ
@given(lines=st.lists(st.one_of(_MOUNT_LINE, st.text(max_size=80)), max_size=8))
def test_mountinfo_parser_never_fails(tmp_path_factory: Any, lines: list[str]) -> None:
    # mountinfo as the kernel writes it, mixed with garbage: a set of devices, never an error
    path = tmp_path_factory.mktemp("m") / "mountinfo"
    path.write_text("".join(lines), encoding="utf-8", errors="surrogateescape")
    assert isinstance(pseudo_devices(str(path)), frozenset)


_NUMBERISH = st.text(alphabet="-+_ 0x19afAF", max_size=20)
_PERF_LINE = st.builds(lambda a, b: f"{a} {b} name\n".encode(), _NUMBERISH, _NUMBERISH)


@FUZZ
@given(data=st.one_of(st.binary(max_size=400),
                      st.lists(_PERF_LINE, max_size=6).map(b"".join)))
def test_target_maps_and_perf_maps_never_fail(data: bytes) -> None:
    # what a recorded process controls: its maps' paths and its perf map; entries stay
    # within what a recording can hold (unsigned 64-bit)
    parse_maps(data.decode("utf-8", "replace"))
    for entry in parse_perf_map(data):
        assert 0 <= entry.start < 1 << 64 and 0 <= entry.size < 1 << 64

@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)), min_size=1,
                      max_size=10))
def test_mutated_compressed_dwarf_image(tmp_path_factory: Any, compressed_dwarf: bytes,
                                        flips: list[tuple[int, int]]) -> None:
    # GIVEN a binary with zlib-compressed DWARF sections, bytes flipped
    data = bytearray(compressed_dwarf)
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    # WHEN the image for symbolic is prepared and a download check runs over it
    # THEN only an ElfError may come out, and every debug section of the image is plain
    from bee_contract.errors import ElfError
    from bee_report.dwarf.symbolic_input import symbolic_image
    from bee_report.elf.elffile import ElfFile
    from bee_report.elf.sections import SHF_COMPRESSED
    from bee_report.find.debuginfod import _incomplete

    path = tmp_path_factory.mktemp("c") / "c"
    path.write_bytes(bytes(data))
    assert _incomplete(path, None) is None or isinstance(_incomplete(path, None), str)
    try:
        elf = ElfFile.from_bytes(bytes(data), "c")
        image = ElfFile.from_bytes(symbolic_image(bytes(data), elf), "image")
    except ElfError:
        return
    for sec in image.sections:
        if sec.name.startswith(".debug_"):
            assert not sec.flags & SHF_COMPRESSED


@pytest.fixture(scope="module")
def compressed_dwarf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("z") / "chain"
    subprocess.run(["gcc", "-O1", "-g", "-gz=zlib", "-o", str(out), str(SRC / "chain.c")],
                   check=True)
    return out.read_bytes()

"""Files put in place by a hostile process, recording or symbols folder: never block on them.

Every read of a path that something untrusted controls goes through
bee_contract.safeopen: a FIFO, a device, a file of /proc or /sys, or a symlink to one is
refused at once, whoever reads it (recorder, archiver, locator, debug-link resolution).
A blocking open is caught by an interval timer that raises in the test process.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from bee_contract import codec
from bee_contract.buildid import build_id_of_path
from bee_contract.errors import ArchiveError
from bee_contract.recording import Binary, KernelInfo, Mapping, Process, Recording, Sample
from bee_contract.safeopen import RefusedFile, open_regular, read_regular
from bee_record.archive import archive
from bee_record.collect import read_perf_map
from bee_record.procs import ProcessTable
from bee_record.python.detect import Detector
from bee_record.unwind.table import TableError
from bee_record.unwind.table import load as load_unwind_table
from bee_report.find.debuginfo import file_crc32
from bee_report.find.locate import Locator
from bee_report.find.unpack import MAX_DEPTH, symbols_from_archive
from tests.test_archive import header

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


class Blocked(Exception):
    """Raised by the timer when a read blocks."""


@contextlib.contextmanager
def must_not_block(seconds: float = 3.0) -> Iterator[None]:
    """Fail (instead of hanging) when the body blocks longer than `seconds`."""
    def ring(signum: int, frame: FrameType | None) -> None:
        raise Blocked(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture()
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_open_regular_refuses_fifo_device_and_pseudo_files_at_once(
        fifo: Path, tmp_path: Path) -> None:
    # GIVEN a FIFO, a device, kernel pseudo files and a symlink into /proc
    link = tmp_path / "pagemap"
    link.symlink_to("/proc/self/pagemap")
    # WHEN each is opened THEN each is refused, without blocking, saying what it is
    with must_not_block():
        for path, why in ((fifo, "FIFO"), ("/dev/null", "character device"),
                          ("/proc/self/status", "pseudo"), (link, "pseudo"),
                          ("/sys/kernel/notes", "pseudo")):
            with pytest.raises(RefusedFile, match=why):
                open_regular(path)


def test_open_regular_reads_regular_files_and_allowed_kernel_files(tmp_path: Path) -> None:
    # GIVEN a plain file and a symlink to it
    plain = tmp_path / "plain"
    plain.write_bytes(b"data")
    (tmp_path / "link").symlink_to(plain)
    # WHEN read THEN the contents come back; kernel files only when asked for
    assert read_regular(plain, 100) == b"data"
    assert read_regular(tmp_path / "link", 2) == b"da"
    with pytest.raises(RefusedFile, match="symbolic link"):
        open_regular(tmp_path / "link", follow=False)
    assert b"Name:" in read_regular("/proc/self/status", 1 << 16, pseudo=True)
    with pytest.raises(RefusedFile, match="larger than"):
        open_regular(plain, max_size=3)


def test_build_id_of_a_fifo_is_none_without_blocking(fifo: Path) -> None:
    with must_not_block():
        assert build_id_of_path(str(fifo)) is None


def test_recorder_does_not_block_on_a_mapping_replaced_by_a_fifo(
        fifo: Path, tmp_path: Path) -> None:
    # GIVEN a process whose executable mapping's path is now a FIFO (and no map_files)
    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "maps").write_text(
        f"400000-401000 r-xp 00000000 08:01 1234 {fifo}\n"
        f"7f0000000000-7f0000100000 r-xp 00000000 08:01 99 {LIBC}\n")
    table = ProcessTable(proc=str(proc))
    # WHEN the recorder captures it
    with must_not_block():
        idx = table.capture(77, 0, "evil")
    # THEN the FIFO gives a binary without build-id, and the other mapping still resolves
    maps = table.processes[idx].maps
    assert table.binaries[maps[0].binary].build_id is None
    assert table.binaries[maps[1].binary].build_id == build_id_of_path(LIBC)


def test_recorder_does_not_block_on_a_fifo_perf_map() -> None:
    # GIVEN a FIFO at /tmp/perf-PID.map for a pid that does not exist
    pid = 4_000_000 + os.getpid() % 100_000
    path = Path(f"/tmp/perf-{pid}.map")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.mkfifo(path)
    try:
        # WHEN the recorder reads the perf map THEN it gets nothing, at once
        with must_not_block():
            assert read_perf_map(pid, pid) == []
    finally:
        path.unlink()


def test_perf_map_symlink_is_not_followed(tmp_path: Path) -> None:
    # GIVEN /tmp/perf-PID.map as a symlink to a file in the perf map format
    pid = 4_100_000 + os.getpid() % 100_000
    target = tmp_path / "secret"
    target.write_text("1000 10 secret_name\n")
    path = Path(f"/tmp/perf-{pid}.map")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.symlink_to(target)
    try:
        assert read_perf_map(pid, pid) == []
    finally:
        path.unlink()


def test_archive_does_not_block_on_a_fifo_binary(fifo: Path, tmp_path: Path) -> None:
    # GIVEN a recording whose hit binary's recorded path is now a FIFO
    m = Mapping(0x400000, 0x401000, 0, 0x801, 1, str(fifo), 0)
    rec = Recording(header(), (Binary(str(fifo), "ab" * 20, 4096),),
                    (Process(5, 0, 5, 1, "x", str(fifo), None, (m,)),), ((0x400010,),),
                    (Sample(0, 5, 0, "x", 0, -1, 1, 1),), KernelInfo("6.1", None, ()))
    src = tmp_path / "r.bee"
    codec.write(rec, src)
    # WHEN it is archived THEN the binary is missing (not a regular file), nothing blocks
    with must_not_block():
        result = archive(src, tmp_path / "a.tar.gz", debug_dirs=(),
                         proc=str(tmp_path / "no-proc"))
    assert result.binaries == 0
    assert "FIFO" in result.missing[0].reason


def test_debuglink_crc_never_reads_proc(tmp_path: Path) -> None:
    # GIVEN a debug-link candidate that is a symlink to /proc/self/pagemap, and a FIFO
    link = tmp_path / "prog.debug"
    link.symlink_to("/proc/self/pagemap")
    os.mkfifo(tmp_path / "f.debug")
    plain = tmp_path / "plain.debug"
    plain.write_bytes(b"abc")
    # WHEN their CRC is asked THEN there is none, at once; a plain file still has one
    with must_not_block():
        assert file_crc32(link) is None
        assert file_crc32(tmp_path / "f.debug") is None
    assert file_crc32(plain) == zlib.crc32(b"abc")


def test_symbols_folder_index_skips_fifos_and_pseudo_files(tmp_path: Path) -> None:
    # GIVEN a symbols folder holding a FIFO, a symlink into /proc and the real libc
    os.mkfifo(tmp_path / "trace_pipe")
    (tmp_path / "kcore").symlink_to("/proc/self/pagemap")
    if os.path.exists("/sys/kernel/tracing/trace_pipe"):  # a tracefs file that blocks on read
        (tmp_path / "trace_pipe.so").symlink_to("/sys/kernel/tracing/trace_pipe")
    (tmp_path / "libc.so.6").symlink_to(LIBC)
    locator = Locator([tmp_path], use_original_paths=False)
    # WHEN a binary is looked up by build-id only THEN libc is found, nothing blocks
    with must_not_block():
        got = locator.find("/elsewhere/libc-copy.so", build_id_of_path(LIBC))
    assert got is not None and os.path.samefile(got, LIBC)


def test_deeply_nested_archive_is_one_line(tmp_path: Path) -> None:
    # GIVEN an archive with a file 2,000 folders deep
    archive_path = tmp_path / "deep.tar"
    with tarfile.open(archive_path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("/".join(["d"] * 2000) + "/f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    # WHEN it is given as symbols THEN it is refused in one short line
    with pytest.raises(ArchiveError) as exc:
        symbols_from_archive(archive_path, tmp_path / "cache")
    assert str(exc.value).endswith(f"nested more than {MAX_DEPTH} folders deep; refused")
    assert len(str(exc.value)) < 400


def test_deeply_nested_symbols_folder_is_indexed() -> None:
    # GIVEN a symbols folder holding libc 2,000 folders deep (outside pytest's tmp_path:
    # pytest's clean-up of a tree that deep fails, in this and later sessions)
    top = Path(tempfile.mkdtemp(prefix="bee-deep-"))
    deep = top
    try:
        for _ in range(2000):
            deep = deep / "d"
            deep.mkdir()
        (deep / "libc.so.6").symlink_to(LIBC)
        # WHEN a binary is looked up by build-id THEN it is found there, no RecursionError
        got = Locator([top], use_original_paths=False).find("/x/libc", build_id_of_path(LIBC))
        assert got is not None and got.name == "libc.so.6"
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)


def test_unwind_table_of_a_fifo_fails_at_once(fifo: Path) -> None:
    # GIVEN a mapped binary's path replaced by a FIFO WHEN the unwinder reads its CFI
    # THEN it gives up at once, saying why
    with must_not_block(), pytest.raises(TableError, match="FIFO"):
        load_unwind_table(str(fifo), None)


def test_python_detection_does_not_block_on_a_fifo(tmp_path: Path) -> None:
    # GIVEN a process whose python3.11 mapping, seen through its root, is now a FIFO
    proc = tmp_path / "proc"
    exe = "/usr/bin/python3.11"
    (proc / "77" / "root" / "usr" / "bin").mkdir(parents=True)
    os.mkfifo(proc / "77" / "root" / exe.lstrip("/"))
    maps = (Mapping(0x400000, 0x401000, 0, 0x801, 5, exe, 0),)
    # WHEN the recorder looks for CPython in it THEN it finds none, at once
    with must_not_block():
        assert Detector().detect(77, exe, maps, proc=str(proc)) is None

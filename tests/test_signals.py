"""SIGTERM and SIGHUP end report-side commands like Ctrl-C: every temporary is cleaned up;
temporaries of a run killed outright (SIGKILL) are removed by the next run."""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from bee_contract.atomic import STALE_AFTER_S
from bee_report.find.unpack import symbols_from_archive
from formats.make_sample import SAMPLE
from tests.conftest import REPO

_BIG = 512 << 20  # compresses about 30 times (within the expansion limit), seconds to extract
_BLOCK = bytes(os.urandom(2048)) + bytes(62 * 1024)


class _Sparse(io.RawIOBase):
    """Blocks of 2 KiB of noise and 62 KiB of zeros."""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = min(len(b), len(_BLOCK))
        b[:n] = _BLOCK[:n]
        return n


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .tar.gz holding one 512 MiB member."""
    path = tmp_path_factory.mktemp("big") / "symbols.tar.gz"
    with gzip.open(path, "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = _BIG
        tar.addfile(info, io.BufferedReader(_Sparse(), len(_BLOCK)))
    return path


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "bee" / "archives").glob(".*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_during_extraction_leaves_no_temporary(big_archive: Path, tmp_path: Path,
                                                      sig: int) -> None:
    # GIVEN `bee report --symbols BIG.tar.gz` busy extracting the archive
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "bee", "report", str(SAMPLE), "-f", "folded",
                             "--symbols", str(big_archive)], cwd=REPO,
                            env={**os.environ, "XDG_CACHE_HOME": str(cache)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not leftovers(cache) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert leftovers(cache), "the extraction started"
    # WHEN the signal arrives
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    # THEN bee says so, exits 128+N, and the half-extracted folder is gone
    assert proc.returncode == 128 + sig, err
    assert err.strip().endswith(f"bee: terminated by {signal.Signals(sig).name}")
    assert leftovers(cache) == []


def test_stale_extraction_of_a_killed_run_is_removed(tmp_path: Path) -> None:
    # GIVEN a half-extracted folder left by a run killed an hour ago, and a small archive
    base = tmp_path / "archives"
    stale = base / ".0123456789abcdef.k2j4h1x_.tmp"
    (stale / "tree").mkdir(parents=True)
    (stale / "tree" / "half").write_bytes(b"x")
    old = time.time() - STALE_AFTER_S - 60
    os.utime(stale, (old, old))
    archive = tmp_path / "s.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"y"))
    # WHEN the next run extracts an archive THEN the stale folder is gone
    symbols_from_archive(archive, tmp_path)
    assert not stale.exists()

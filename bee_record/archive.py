"""`bee archive`: pack the binaries a recording's samples hit, with their debug files.

Runs on the target, next to the recording, with the standard library only (it never
imports report code). A binary is *hit* when a user-stack address of a sample of a
process falls in one of that process's mappings of the binary (every frame but the
leaf is looked up at ``address - 1``, as the report side does). Each hit binary is read
from its recorded path, or, when that file is gone or its build-id changed, through
``/proc/PID/map_files`` of a process still running it, or ``/proc/PID/root`` (a
container). Whatever is read must carry the recorded build-id.

The archive is a gzip-compressed tar holding a `.build-id` tree, the layout `bee report
--symbols` (and gdb, perf) understand:

- ``.build-id/xx/rest``: the binary whose build-id is ``xxrest``;
- ``.build-id/xx/rest.debug``: its separate debug file, when
  ``/usr/lib/debug/.build-id/xx/rest.debug`` exists with the same build-id;
- ``MANIFEST.json``: build-id -> original paths, size, what was included and from where,
  and the binaries left out with the reason.

It is deterministic (members sorted by name, mtime from the recording's start, uid/gid
0, mode 0644, gzip header without name or time) and written atomically with mode 0600
(temporary file in the output folder, fsync, rename), streaming, as archives can be big.
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import io
import json
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bee_contract import codec
from bee_contract.atomic import atomic_output, check_not_input
from bee_contract.buildid import (
    DEBUG_ROOTS,
    build_id_of_file,
    build_id_tree_path,
    valid_build_id,
)
from bee_contract.errors import RecordError
from bee_contract.recording import Recording
from bee_contract.safeopen import open_regular

#: Folders searched for `.build-id/xx/rest.debug` debug files.
MANIFEST_NAME = "MANIFEST.json"
MANIFEST_VERSION = 1
_MAX_PROCESS_TRIES = 8  # map_files/root candidates tried per binary
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Missing:
    """A hit binary that is not in the archive, and why."""

    path: str
    build_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """What :func:`archive` wrote."""

    path: Path
    binaries: int  # binaries in the archive
    debug_files: int  # separate debug files in the archive
    bytes: int  # size of the archive file
    missing: tuple[Missing, ...]  # hit binaries left out

    @property
    def files(self) -> int:
        """Binaries plus debug files in the archive."""
        return self.binaries + self.debug_files

    def summary(self) -> str:
        """`Wrote FILE (N binaries, M debug files, X MB; K missing)`."""
        return (f"Wrote {self.path} ({self.binaries} binaries, {self.debug_files} debug files, "
                f"{self.bytes / 1e6:.1f} MB; {len(self.missing)} missing)")


@dataclass
class _Wanted:
    """One hit build-id: its recorded paths and the live mappings that can supply it."""

    build_id: str
    paths: list[str]
    size: int
    mappings: dict[tuple[int, int, int, str], None]  # (pid, start, end, path)


def archive(
    recording: Path,
    output: Path,
    *,
    debug_dirs: Sequence[Path] = DEBUG_ROOTS,
    proc: str = "/proc",
) -> ArchiveResult:
    """Write the binaries (and debug files) hit by `recording`'s samples to `output`.

    Raises a BeeError (one line) when the recording cannot be read or the archive cannot
    be written; binaries that cannot be found are listed in the result and the manifest.
    """
    recording, output = Path(recording), Path(output)
    check_not_input(output, [recording])
    rec = codec.read(recording)
    wanted, missing = _hit_binaries(rec)
    mtime = rec.header.start_time_ns // 1_000_000_000
    entries: dict[str, dict[str, Any]] = {}
    n_bin = n_dbg = 0
    with atomic_output(output) as out:
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6)
        with gz, tarfile.TarFile(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT,
                                 copybufsize=_CHUNK) as tar:
            for build_id in sorted(wanted):
                want = wanted[build_id]
                name = str(build_id_tree_path(Path(), build_id))
                entry: dict[str, Any] = {"path": want.paths[0], "paths": want.paths,
                                         "size": want.size}
                reasons: list[str] = []
                candidates = _binary_candidates(want, proc, reasons)
                with _open_verified(candidates, build_id, reasons) as found:
                    if found is None:
                        missing.append(Missing(want.paths[0], build_id, _why(reasons)))
                        continue
                    f, source, size = found
                    _add(tar, output, name, f, size, mtime)
                n_bin += 1
                entry.update(binary=name, source=source, size=size)
                debug_candidates = [str(build_id_tree_path(d, build_id, ".debug"))
                                    for d in debug_dirs]
                reasons = []
                with _open_verified(debug_candidates, build_id, reasons) as found:
                    if found is None:
                        entry.update(debug=None, debug_missing=_why(reasons))
                    else:
                        f, source, size = found
                        _add(tar, output, name + ".debug", f, size, mtime)
                        n_dbg += 1
                        entry.update(debug=name + ".debug", debug_source=source,
                                     debug_size=size)
                entries[build_id] = entry
            missing.sort(key=lambda m: (m.path, m.build_id or ""))
            manifest = {
                "format": "bee-archive",
                "version": MANIFEST_VERSION,
                "recording": {"host": rec.header.host, "start_time_ns": rec.header.start_time_ns,
                              "arch": rec.header.arch, "bee_version": rec.header.bee_version},
                "binaries": entries,
                "missing": [{"path": m.path, "build_id": m.build_id, "reason": m.reason}
                            for m in missing],
            }
            data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
            _add(tar, output, MANIFEST_NAME, io.BytesIO(data), len(data), mtime)
        size = out.tell()
    return ArchiveResult(output, n_bin, n_dbg, size, tuple(missing))


def _hit_binaries(rec: Recording) -> tuple[dict[str, _Wanted], list[Missing]]:
    """Build-id -> what is known of each hit binary, and hit binaries that cannot be archived."""
    maps = [sorted(p.maps, key=lambda m: m.start) for p in rec.processes]
    starts = [[m.start for m in ms] for ms in maps]
    hits: dict[int, dict[tuple[int, int, int, str], None]] = {}  # binary -> mappings
    unreadable: set[str] = set()
    for pidx, ustack in sorted({(s.process, s.user_stack) for s in rec.samples
                                if s.user_stack >= 0}):
        pid = rec.processes[pidx].pid
        for depth, addr in enumerate(rec.stacks[ustack]):
            look = addr if depth == 0 else addr - 1
            i = bisect.bisect_right(starts[pidx], look) - 1
            if i < 0 or look >= maps[pidx][i].end:
                continue
            m = maps[pidx][i]
            if m.binary < 0:
                if m.path.startswith("/"):
                    unreadable.add(m.path)
                continue
            hits.setdefault(m.binary, {})[(pid, m.start, m.end, m.path)] = None
    wanted: dict[str, _Wanted] = {}
    missing = [Missing(p, None, "not readable on the target when recorded")
               for p in sorted(unreadable)]
    for idx in sorted(hits):
        b = rec.binaries[idx]
        if b.build_id is None or not valid_build_id(b.build_id):
            missing.append(Missing(b.path, b.build_id, "no build-id recorded"))
            continue
        w = wanted.setdefault(b.build_id, _Wanted(b.build_id, [], b.size, {}))
        if b.path not in w.paths:
            w.paths.append(b.path)
        w.mappings.update(hits[idx])
    return wanted, missing


def _binary_candidates(want: _Wanted, proc: str, reasons: list[str]) -> Iterator[str]:
    """Recorded paths, then /proc/PID/map_files and /proc/PID/root of running processes."""
    yield from want.paths
    tried: set[int] = set()
    for pid, start, end, path in want.mappings:
        if pid in tried:
            continue
        if len(tried) >= _MAX_PROCESS_TRIES:
            return
        tried.add(pid)
        if not os.path.isdir(f"{proc}/{pid}"):
            reasons.append(f"process {pid} has exited")
            continue
        yield f"{proc}/{pid}/map_files/{start:x}-{end:x}"
        yield f"{proc}/{pid}/root{path}"


@contextlib.contextmanager
def _open_verified(
    candidates: Iterator[str] | Sequence[str], build_id: str, reasons: list[str],
) -> Iterator[tuple[BinaryIO, str, int] | None]:
    """The first candidate that is a regular file with `build_id`: (file, path, size).

    Yields None when none is; `reasons` then says why each candidate was passed over.
    """
    for cand in candidates:
        try:  # never blocks on a FIFO or opens a device a process put there: see safeopen
            f = open_regular(cand)
        except OSError as exc:
            reasons.append(f"{cand}: {exc.strerror or exc}")
            continue
        with f:
            st = os.fstat(f.fileno())
            got = build_id_of_file(f)
            if got != build_id:
                reasons.append(f"{cand}: {f'has build-id {got}' if got else 'has no build-id'}")
                continue
            f.seek(0)
            yield f, cand, st.st_size
            return
    yield None


def _why(reasons: list[str]) -> str:
    """Reasons joined into one line (the first few)."""
    shown = list(dict.fromkeys(reasons))
    more = f"; and {len(shown) - 4} more" if len(shown) > 4 else ""
    return "; ".join(shown[:4]) + more if shown else "not found"


def _add(tar: tarfile.TarFile, output: Path, name: str, f: BinaryIO, size: int,
         mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    try:
        tar.addfile(info, f)
    except OSError as exc:  # the source shrank while being read, or the disk is full
        raise RecordError(f"{output}: cannot add {name}: {exc.strerror or exc}") from None


__all__ = ["MANIFEST_NAME", "ArchiveResult", "Missing", "archive"]

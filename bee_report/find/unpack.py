"""Unpack a symbols archive (`bee archive`, `perf archive`-like tarballs) for `--symbols`.

Archives come from elsewhere and are treated as hostile. Each member is checked before
anything is written: only regular files and directories are extracted; a member with an
absolute path, a `..` component, a NUL, or of any other type (symlink, hardlink, device,
FIFO, ...) stops the extraction with one line naming the archive and the member. Python's
tar extraction is not used at all: files are created by this module with
``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0644, parents 0755, so neither member names nor
metadata (owners, modes, times) can reach outside the folder or surprise its user.

Limits: the bytes written for one archive, counted as they are written (8 GiB, and no more
than :data:`MAX_EXPANSION` times the archive's own size beyond the first 64 MiB, so a small
compressed bomb is refused early); sparse members are refused (their holes would be
written out dense); the number of members (100 000), any single tar header block read
(16 MiB, against huge pax/long-name headers) and the total decompressed stream, checked
before the data is produced. The extraction cache as a whole is bounded too
(:data:`MAX_CACHE_BYTES`): after an extraction, the least recently completed other
extractions are removed until it fits.
A corrupt or truncated archive (including a plain tar lacking its end-of-archive blocks)
is one line, never a traceback.

Extraction goes to a temporary folder under ``cache_root/archives``, a completion marker is
written last, and the folder is renamed to ``cache_root/archives/<sha256 of the archive>``;
a complete folder is reused by later runs. :func:`symbols_from_archive` returns its
``tree`` subfolder, which is then used like any ``--symbols`` folder.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Protocol

from bee_contract.atomic import signals_held, sweep_stale
from bee_contract.errors import ArchiveError
from bee_contract.safeopen import open_regular

MAX_TOTAL_BYTES = 8 << 30
MAX_EXPANSION = 100
"""Most bytes extracted per byte of archive (beyond :data:`FREE_EXPANSION_BYTES`)."""
FREE_EXPANSION_BYTES = 64 << 20
MAX_CACHE_BYTES = 32 << 30
"""Most bytes all extracted archives may take in the cache together."""
MAX_MEMBERS = 100_000
MAX_DEPTH = 64  # folders a member may be nested in (a debug tree needs fewer than 10)
MAX_HEADER_READ = 16 << 20
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tar")
COMPLETE_MARKER = "complete"
_CHUNK = 1 << 20
_TMP_PREFIX = re.compile(r"\.[0-9a-f]{16}\.")  # then mkdtemp's 8 characters and ".tmp"
_BLOCK = tarfile.BLOCKSIZE
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError)


def is_archive(path: Path) -> bool:
    """True when `path` names a tar archive (by its suffix) rather than a folder."""
    return path.name.endswith(ARCHIVE_SUFFIXES) and not path.is_dir()


def resolve_symbol_dirs(paths: Iterable[Path], cache_root: Path) -> tuple[Path, ...]:
    """`--symbols` values with each archive replaced by its extracted folder, in order."""
    out: list[Path] = []
    for p in paths:  # an archive never evicts one extracted earlier in the same call
        out.append(symbols_from_archive(p, cache_root, keep=frozenset(out))
                   if is_archive(Path(p)) else Path(p))
    return tuple(out)


def symbols_from_archive(
    path: Path,
    cache_root: Path,
    *,
    max_bytes: int = MAX_TOTAL_BYTES,
    max_members: int = MAX_MEMBERS,
    max_cache_bytes: int = MAX_CACHE_BYTES,
    keep: frozenset[Path] = frozenset(),
) -> Path:
    """Extract `path` (.tar, .tar.gz, .tar.xz, .tar.bz2) once; return the extracted folder.

    Raises :class:`ArchiveError` (one line naming the archive, and the member when one is
    to blame); nothing is left under the final name unless the extraction completed.
    Older extractions are then removed while the cache holds more than `max_cache_bytes`,
    except those whose folders (as returned here) are in `keep`.
    """
    path = Path(path)
    digest = _sha256(path)
    base = Path(cache_root) / "archives"
    final = base / digest
    if (final / COMPLETE_MARKER).is_file() and (final / "tree").is_dir():
        return final / "tree"
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read: {exc.strerror or exc}") from None
    max_bytes = min(max_bytes, max_cache_bytes,
                    max(FREE_EXPANSION_BYTES, MAX_EXPANSION * size))
    try:
        base.mkdir(parents=True, exist_ok=True)
        sweep_stale(base, _TMP_PREFIX)  # extractions of earlier runs that were killed
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}.", suffix=".tmp", dir=base))
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot extract into {base}: {exc.strerror or exc}") from None
    try:
        _extract(path, tmp / "tree", max_bytes, max_members)
        marker = tmp / COMPLETE_MARKER
        with open(marker, "w", encoding="ascii") as f:
            f.write(digest + "\n")
            f.flush()
            os.fsync(f.fileno())
        if final.exists() and not (final / COMPLETE_MARKER).is_file():
            shutil.rmtree(final)  # left by something else than this module; never complete
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # another run finished the same archive first: use its copy
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot extract into {base}: {exc.strerror or exc}") from None
    finally:
        with signals_held():  # a signal must not leave the folder half removed
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    _make_room(base, max_cache_bytes, {final} | {k.parent for k in keep})
    return final / "tree"


def _tree_bytes(folder: Path) -> int:
    """Bytes of the files below `folder` (iterative: folders may nest deeply)."""
    total, stack = 0, [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


def _make_room(base: Path, max_cache_bytes: int, in_use: set[Path]) -> None:
    """Remove the least recently completed extractions not in use until all fit."""
    done: list[tuple[float, Path, int]] = []
    for folder in base.iterdir():
        marker = folder / COMPLETE_MARKER
        with contextlib.suppress(OSError):
            done.append((marker.stat().st_mtime, folder, _tree_bytes(folder)))
    total = sum(size for _, _, size in done)
    for _, folder, size in sorted(done):
        if total <= max_cache_bytes:
            break
        if folder in in_use:
            continue
        with contextlib.suppress(OSError):
            (folder / COMPLETE_MARKER).unlink()  # no longer complete before it goes
        shutil.rmtree(folder, ignore_errors=True)
        total -= size


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open_regular(path) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return h.hexdigest()


class _Stream(Protocol):
    """What :class:`_Bounded` needs of the decompressed stream."""

    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


class _Bounded:
    """A read-only stream (decompressed) that refuses reads and seeks past its limits.

    tarfile reads headers, long names and pax records in single reads; refusing reads over
    ``max_read`` and positions past ``limit`` bounds memory and work before they happen.
    """

    def __init__(self, archive: Path, raw: _Stream, limit: int, max_read: int) -> None:
        self.archive = archive
        self.raw = raw
        self.limit = limit
        self.max_read = max_read

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.max_read:
            raise ArchiveError(f"{self.archive}: a tar header record of {_size(size)} is larger "
                               f"than {_size(self.max_read)}; refused")
        if self.raw.tell() + size > self.limit:
            raise ArchiveError(f"{self.archive}: expands to more than {_size(self.limit)}; refused")
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else (
            self.raw.tell() + offset if whence == os.SEEK_CUR else -1)
        if target < 0:
            raise ArchiveError(f"{self.archive}: unsupported seek in the archive stream")
        if target > self.limit:
            raise ArchiveError(f"{self.archive}: expands to more than {_size(self.limit)}; refused")
        return self.raw.seek(target)

    def tell(self) -> int:
        return self.raw.tell()


@contextlib.contextmanager
def _open_stream(path: Path) -> Iterator[_Stream]:
    """The archive's decompressed byte stream, compression recognized by magic bytes."""
    with contextlib.ExitStack() as stack:
        try:
            f = stack.enter_context(open_regular(path))
            magic = f.read(6)
            f.seek(0)
        except OSError as exc:
            raise ArchiveError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if magic[:2] == b"\x1f\x8b":
            yield stack.enter_context(gzip.GzipFile(fileobj=f, mode="rb"))
        elif magic == b"\xfd7zXZ\x00":
            yield stack.enter_context(lzma.LZMAFile(f, mode="rb"))
        elif magic[:3] == b"BZh":
            yield stack.enter_context(bz2.BZ2File(f, mode="rb"))
        else:
            yield f


def _extract(archive: Path, dest: Path, max_bytes: int, max_members: int) -> None:
    """Check and write every member of `archive` below `dest` (which must not exist)."""
    dest.mkdir(mode=0o700)
    limit = max_bytes + max_members * 4 * _BLOCK + MAX_HEADER_READ * 4
    declared = members = 0
    written = [0]  # bytes written so far, for every member together
    last = ""
    try:
        with _open_stream(archive) as raw:
            stream = _Bounded(archive, raw, limit, MAX_HEADER_READ)
            with tarfile.open(fileobj=stream, mode="r:") as tar:  # type: ignore[call-overload]
                while (member := tar.next()) is not None:
                    members += 1
                    if members > max_members:
                        raise ArchiveError(f"{archive}: more than {max_members} members; refused")
                    rel = _member_path(archive, member)
                    last = member.name
                    if member.isdir():
                        if rel is not None:
                            _makedirs(archive, member, dest / rel)
                        continue
                    declared += member.size
                    if declared > max_bytes:  # refused early on what the headers say
                        raise ArchiveError(
                            f"{archive}: member {member.name!r}: the archive's files add up to "
                            f"more than {_size(max_bytes)}; refused")
                    assert rel is not None  # _member_path refuses nameless files
                    _write_member(archive, tar, member, dest / rel, written, max_bytes)
                stream.seek(tar.offset)
                if stream.read(_BLOCK) != bytes(_BLOCK):
                    raise ArchiveError(f"{archive}: truncated or corrupt{_after(last)} "
                                       "(no end-of-archive blocks)")
    except _CORRUPT as exc:
        what = str(exc).strip() or type(exc).__name__
        raise ArchiveError(f"{archive}: corrupt or truncated archive{_after(last)} ({what})"
                           ) from None


def _after(member: str) -> str:
    return f" near member {member!r}" if member else " at its start"


def _size(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):g} GiB"
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"


def _member_path(archive: Path, member: tarfile.TarInfo) -> PurePosixPath | None:
    """The member's safe relative path (None for the top folder itself), or ArchiveError."""
    name = member.name

    def refuse(why: str) -> ArchiveError:
        shown = name if len(name) <= 200 else f"{name[:120]}...{name[-60:]}"
        return ArchiveError(f"{archive}: member {shown!r}: {why}; refused")

    if member.issparse():
        raise refuse("sparse file")
    if member.issym():
        raise refuse("symbolic link")
    if member.islnk():
        raise refuse("hard link")
    if member.ischr() or member.isblk():
        raise refuse("device file")
    if member.isfifo():
        raise refuse("FIFO")
    if not (member.isreg() or member.isdir()):
        raise refuse(f"unsupported member type {member.type!r}")
    if not name or "\0" in name:
        raise refuse("empty name or NUL in name")
    if name.startswith("/"):
        raise refuse("absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refuse("'..' in path")
    if len(parts) > MAX_DEPTH + 1:
        raise refuse(f"nested more than {MAX_DEPTH} folders deep")
    if not parts:
        if member.isdir():
            return None
        raise refuse("file without a name")
    return PurePosixPath(*parts)


def _makedirs(archive: Path, member: tarfile.TarInfo, target: Path) -> None:
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(f"{archive}: member {member.name!r}: cannot create folder: "
                           f"{exc.strerror or exc}") from None


def _write_member(archive: Path, tar: tarfile.TarFile, member: tarfile.TarInfo,
                  target: Path, written: list[int], max_bytes: int) -> None:
    src = tar.extractfile(member)
    if src is None:  # not reached for regular files
        raise ArchiveError(f"{archive}: member {member.name!r}: no data")
    _makedirs(archive, member, target.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise ArchiveError(
            f"{archive}: member {member.name!r}: duplicate member; refused") from None
    except OSError as exc:
        raise ArchiveError(f"{archive}: member {member.name!r}: cannot write: "
                           f"{exc.strerror or exc}") from None
    with src, os.fdopen(fd, "wb") as out:
        left = member.size
        while left > 0:
            chunk = src.read(min(_CHUNK, left))  # corrupt input raises, caught by _extract
            if not chunk:
                raise ArchiveError(f"{archive}: member {member.name!r}: truncated data")
            written[0] += len(chunk)
            if written[0] > max_bytes:  # what is really written, whatever headers say
                raise ArchiveError(f"{archive}: member {member.name!r}: expands to more than "
                                   f"{_size(max_bytes)}; refused")
            try:
                out.write(chunk)
            except OSError as exc:
                raise ArchiveError(f"{archive}: member {member.name!r}: cannot write: "
                                   f"{exc.strerror or exc}") from None
            left -= len(chunk)


__all__ = [
    "ARCHIVE_SUFFIXES",
    "MAX_CACHE_BYTES",
    "MAX_DEPTH",
    "MAX_EXPANSION",
    "MAX_MEMBERS",
    "MAX_TOTAL_BYTES",
    "is_archive",
    "resolve_symbol_dirs",
    "symbols_from_archive",
]

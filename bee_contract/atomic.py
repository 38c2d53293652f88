"""File output for every command: atomic for files, written through for devices and links.

- No file yet, or a regular file: a temporary file ``.NAME.XXXXXXXX.tmp`` in the target's
  folder, fsync'ed (unless the caller can make it again) and renamed over ``path`` when
  complete. Nothing is ever left under the final name unless the write completed; on any
  failure (disk full, permissions, an exception or a handled signal in the writer) the
  temporary file is removed. Files are created 0600 (recorded names and paths are as
  sensitive as the recording).
- A symbolic link, character device or FIFO (``-o /dev/stdout``, ``/dev/null``, a named
  pipe): written through, like a shell's ``>``: the link and the node stay what they are
  (never replaced by a regular file), a link's target is truncated and written in place
  (not atomic), and a write error (``/dev/full``) is one line. A dangling link is never
  followed to create a file, and directories, block devices and sockets are refused.
- Temporaries of an earlier run killed with SIGKILL (bee's own naming ``.NAME.XXXXXXXX.tmp``
  for a NAME with the same extension, owned by this user, untouched for
  :data:`STALE_AFTER_S`) are removed by the next write of that kind to that folder.
- An output that is one of the command's inputs (same device and inode) is refused
  before anything is written (:func:`check_not_input`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from bee_contract.errors import OutputError

#: A temporary left this long without a change is an earlier run's leftover.
STALE_AFTER_S = 3600
#: What tempfile.mkstemp/mkdtemp put between prefix and suffix.
_RANDOM = "[a-z0-9_]{8}"


#: Signals that end bee (as exceptions, see bee.cli): held while a clean-up runs.
HELD_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while the body (a clean-up) runs; delivered after.

    A signal arriving during a clean-up would otherwise interrupt it half-way (a folder
    half removed); held, it takes effect as soon as the clean-up is done.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def check_not_input(output: Path | str, inputs: Iterable[Path | str]) -> None:
    """Refuse (one line) when `output` is the same file as one of `inputs`."""
    try:
        out = os.stat(output)
    except OSError:
        return
    if not stat.S_ISREG(out.st_mode):
        return  # a device or pipe written through replaces nothing
    for given in inputs:
        try:
            st = os.stat(given)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            raise OutputError(f"{output}: is the input {given}; refusing to overwrite it")


def sweep_stale(folder: Path | str, prefix: str | re.Pattern[str], suffix: str = ".tmp",
                older_than: float = STALE_AFTER_S) -> int:
    """Remove `prefix` + 8 random characters + `suffix` files and folders in `folder`.

    Only entries owned by this user and unmodified for `older_than` seconds: what
    mkstemp/mkdtemp made for an earlier run that was killed. `prefix` is a literal, or a
    compiled pattern for prefixes that vary. Returns how many went.
    """
    head = prefix.pattern if isinstance(prefix, re.Pattern) else re.escape(prefix)
    pattern = re.compile(head + _RANDOM + re.escape(suffix))
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if st.st_uid != os.geteuid() or now - st.st_mtime < older_than:
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry.path)
            elif stat.S_ISREG(st.st_mode):
                os.unlink(entry.path)
            else:
                continue
            removed += 1
        except OSError:
            continue
    return removed


def _error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write: {exc.strerror or exc}")


@contextlib.contextmanager
def _write_through(path: Path, sync: bool) -> Iterator[BinaryIO]:
    """Write into an existing link target, character device or FIFO (see the module doc)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise OutputError(f"{path}: a dangling symbolic link; not followed") from None
    except OSError as exc:
        raise _error(path, exc) from None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        what = "a directory" if stat.S_ISDIR(st.st_mode) else (
            "a block device" if stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise OutputError(f"{path}: {what}; refusing to write there")
    regular = stat.S_ISREG(st.st_mode)
    # a link's regular target is opened read-write like a temporary (the body may re-read it)
    flags = (os.O_RDWR | os.O_TRUNC if regular else os.O_WRONLY) | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _error(path, exc) from None
    try:
        with os.fdopen(fd, "w+b" if regular else "wb") as f:
            again = os.fstat(f.fileno())
            if stat.S_IFMT(again.st_mode) != stat.S_IFMT(st.st_mode):
                raise OutputError(f"{path}: changed while being opened; not written")
            yield f
            f.flush()
            if sync and regular:
                os.fsync(f.fileno())
    except OSError as exc:
        raise _error(path, exc) from None


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = 0o600, sync: bool = True) -> Iterator[BinaryIO]:
    """A temporary file in `path`'s folder, renamed to `path` only when the body completes.

    The file is opened read-write, so the body may map or re-read what it wrote (to
    verify it before it gets its name). A failure to write raises OutputError. With `sync`
    (for data that cannot be made again, like recordings) the data reaches the disk
    before the rename; reports and caches skip that wait. An existing symlink, character
    device or FIFO at `path` is written through instead (module doc; a device or FIFO is
    write-only there).
    """
    path = Path(path)
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise _error(path, exc) from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with _write_through(path, sync) as f:
            yield f
        return
    folder = path.parent if str(path.parent) else Path(".")
    # leftovers of any earlier output of the same kind (default names change every run)
    kind = re.compile(r"\.[^/]+" + re.escape(path.suffix) + r"\.") if path.suffix else None
    sweep_stale(folder, kind or f".{path.name}.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _error(path, exc) from None
    try:
        with os.fdopen(fd, "w+b") as f:
            os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with signals_held(), contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _error(path, exc) from None
    except BaseException:
        with signals_held(), contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o600, sync: bool = True) -> None:
    """Write bytes to `path` atomically with the given mode (see :func:`atomic_output`)."""
    with atomic_output(Path(path), mode, sync) as f:
        f.write(data)

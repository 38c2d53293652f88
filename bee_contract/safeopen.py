"""Open files that something untrusted may have put in place, without ever blocking on them.

A recorded process controls its perf map and the paths of its mappings; a recording or a
symbols folder names paths that bee then opens. Any of them may be a FIFO (``open`` would
block forever), a device (opening some has side effects: a watchdog, a tape), a symlink
into ``/proc`` or ``/sys`` (``/proc/self/pagemap`` claims petabytes; tracefs'
``trace_pipe`` blocks on read), or a huge file. Every such read goes through
:func:`open_regular`:

1. ``open(path, O_PATH)``: resolves the path without opening the file itself, so nothing
   blocks and no driver's open runs (``follow=False`` adds ``O_NOFOLLOW``);
2. ``fstat`` of that descriptor: only a regular file passes, of at most ``max_size``
   bytes, and (unless ``pseudo=True``, for bee's own reads of kernel files) not on a kernel
   pseudo filesystem (procfs, sysfs, tracefs, debugfs, ...: by device, from
   ``/proc/self/mountinfo``) nor under ``/proc``, ``/sys`` or ``/dev``;
3. the very same inode is then opened for reading through ``/proc/self/fd/N`` with
   ``O_NONBLOCK | O_NOCTTY`` and checked again: no window to swap the file in between.

A refusal is a :class:`RefusedFile`, an ``OSError`` (callers that treat unreadable files
as absent keep doing so) whose ``strerror`` says why.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

#: Filesystems whose "regular files" are kernel interfaces, not data.
PSEUDO_FILESYSTEMS = frozenset({
    "proc", "sysfs", "tracefs", "debugfs", "devtmpfs", "devpts", "cgroup", "cgroup2",
    "securityfs", "bpf", "configfs", "fusectl", "pstore", "efivarfs", "mqueue", "nsfs",
    "binfmt_misc", "selinuxfs", "rpc_pipefs", "autofs", "hugetlbfs",
})
#: Folders never read on behalf of untrusted input.
PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
#: Largest file `open_regular` accepts by default (a big debug file is a few GB).
MAX_FILE_BYTES = 16 << 30

_pseudo_devs: frozenset[int] | None = None


class RefusedFile(OSError):
    """A path that is not a plain regular file bee may read (FIFO, device, pseudo file...)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def pseudo_devices(mountinfo: str = "/proc/self/mountinfo") -> frozenset[int]:
    """Device numbers of the mounted kernel pseudo filesystems (read once, then cached)."""
    global _pseudo_devs
    if _pseudo_devs is None or mountinfo != "/proc/self/mountinfo":
        devs: set[int] = set()
        try:
            with open(mountinfo, encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields, sep, tail = line.partition(" - ")
                    parts = fields.split()
                    fstype = tail.split(" ", 1)[0] if sep else ""
                    if len(parts) > 2 and fstype in PSEUDO_FILESYSTEMS:
                        major, _, minor = parts[2].partition(":")
                        devs.add(os.makedev(int(major), int(minor)))
        except (OSError, ValueError):
            pass
        found = frozenset(devs)
        if mountinfo != "/proc/self/mountinfo":
            return found
        _pseudo_devs = found
    return _pseudo_devs


def _under_pseudo_root(fd: int) -> bool:
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return any(real == r or real.startswith(r + "/") for r in PSEUDO_ROOTS)


def check_regular(st: os.stat_result, path: str | os.PathLike[str], *, pseudo: bool = False,
                  max_size: int | None = MAX_FILE_BYTES) -> None:
    """Raise RefusedFile unless `st` is a regular file bee may read (see the module doc)."""
    if not stat.S_ISREG(st.st_mode):
        raise RefusedFile(errno.EINVAL, f"{_kind(st.st_mode)}, not a regular file", str(path))
    if not pseudo and st.st_dev in pseudo_devices():
        raise RefusedFile(errno.EPERM, "a kernel pseudo file (procfs, sysfs...), not read",
                          str(path))
    if max_size is not None and st.st_size > max_size:
        raise RefusedFile(errno.EFBIG, f"larger than {max_size} bytes", str(path))


def open_regular(path: str | os.PathLike[str], *, follow: bool = True, pseudo: bool = False,
                 max_size: int | None = MAX_FILE_BYTES) -> BinaryIO:
    """Open `path` for reading only if it is a regular file; never blocks (module doc).

    ``follow=False`` refuses a symlink as the last component; ``pseudo=True`` allows files
    of procfs/sysfs (bee's own reads of /proc/PID/maps, kallsyms...). Raises OSError
    (RefusedFile when the file exists but is refused).
    """
    nofollow = 0 if follow else os.O_NOFOLLOW
    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC | nofollow)
    try:
        st = os.fstat(pfd)
        check_regular(st, path, pseudo=pseudo, max_size=max_size)
        if not pseudo and _under_pseudo_root(pfd):
            raise RefusedFile(errno.EPERM, "under /proc, /sys or /dev, not read", str(path))
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(f"/proc/self/fd/{pfd}", flags)
        except FileNotFoundError:  # no /proc mounted: reopen the path and compare below
            fd = os.open(path, flags | nofollow)
    finally:
        os.close(pfd)
    try:
        again = os.fstat(fd)
        if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino):
            raise RefusedFile(errno.EAGAIN, "replaced while being opened", str(path))
        check_regular(again, path, pseudo=pseudo, max_size=max_size)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int, *, follow: bool = True,
                 pseudo: bool = False, max_size: int | None = None) -> bytes:
    """At most `limit` bytes of `path`, opened with :func:`open_regular` (OSError if refused,
    as a file larger than `max_size` is)."""
    with open_regular(path, follow=follow, pseudo=pseudo, max_size=max_size) as f:
        return f.read(limit)


__all__ = ["MAX_FILE_BYTES", "PSEUDO_FILESYSTEMS", "RefusedFile", "check_regular",
           "open_regular", "pseudo_devices", "read_regular"]

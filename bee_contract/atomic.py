"""Atomic file output: a temporary file in the target's folder, renamed when complete.

Nothing is ever left under the final name unless the write completed; on any failure
(disk full, permissions, an exception in the writer) the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bee_contract.errors import BeeError, OutputError


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = 0o600, error: type[BeeError] = OutputError,
                  sync: bool = True) -> Iterator[BinaryIO]:
    """A temporary file in `path`'s folder, renamed to `path` only when the body completes.

    The file is opened read-write, so the body may map or re-read what it wrote (to
    verify it before it gets its name). A failure to write raises `error`. With `sync`
    (for data that cannot be made again, like recordings) the data reaches the disk
    before the rename; reports and caches skip that wait.
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise error(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w+b") as f:
            os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise error(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o600,
                 error: type[BeeError] = OutputError, sync: bool = True) -> None:
    """Write bytes to `path` atomically with the given mode (see :func:`atomic_output`)."""
    with atomic_output(Path(path), mode, error, sync) as f:
        f.write(data)

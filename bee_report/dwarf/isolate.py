"""Run the DWARF engine in a child process, so that its crash is a warning, not bee's end.

symbolic (Rust) recurses over the DIE tree; DWARF with thousands of nested inlined
subroutines overflows its stack (SIGSEGV), which no Python ``except`` can catch. The
work is therefore done in a forked child that inherits the prepared image: it writes a
status byte and the result to a pipe and exits. The parent reads with an overall
deadline; a child killed by a signal, one that ends without a result, or one past the
deadline (then killed) becomes a :class:`DebugInfoError` naming the file and what
happened, and bee goes on with names from symbol tables only.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path

from bee_contract.errors import BeeError, DebugInfoError

__all__ = ["DEFAULT_DEADLINE", "in_child"]

DEFAULT_DEADLINE = 600.0
_OK, _NONE, _ERROR = b"O", b"N", b"E"


def in_child(work: Callable[[], bytes | None], where: Path,
             deadline: float = DEFAULT_DEADLINE) -> bytes | None:
    """``work()`` run in a forked child; its BeeError is re-raised here as DebugInfoError."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(read_fd)
            try:
                blob = work()
                message = _NONE if blob is None else _OK + blob
            except BeeError as exc:
                message = _ERROR + str(exc).encode("utf-8", "replace")
            except BaseException as exc:
                message = _ERROR + f"{where}: DWARF engine failed: {type(exc).__name__}: {exc}" \
                    .encode("utf-8", "replace")
            view = memoryview(message)
            while view:
                view = view[os.write(write_fd, view):]
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks: list[bytes] = []
    done = False
    try:
        end = time.monotonic() + deadline
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                raise DebugInfoError(f"{where}: reading its DWARF took more than "
                                     f"{deadline:g} s; stopped")
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        done = True
    finally:
        os.close(read_fd)
        if not done:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise DebugInfoError(f"{where}: the DWARF engine crashed ({name}) on its debug info")
    data = b"".join(chunks)
    if data[:1] == _OK:
        return data[1:]
    if data[:1] == _NONE:
        return None
    if data[:1] == _ERROR:
        raise DebugInfoError(data[1:].decode("utf-8", "replace"))
    raise DebugInfoError(f"{where}: the DWARF engine ended without a result")

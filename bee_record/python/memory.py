"""Bounded reads of another process's memory with process_vm_readv(2).

A recorded process controls its own memory, so every read here is bounded in size, never
blocks (process_vm_readv does not wait on the target), and a failure is an ordinary
`None`, never an exception.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct

#: Largest single read bee makes in a recorded process.
MAX_READ = 1 << 16


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc: ctypes.CDLL | None = None


def _vm_readv() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = _libc.process_vm_readv
        fn.restype = ctypes.c_ssize_t
        fn.argtypes = [ctypes.c_int, ctypes.POINTER(_IoVec), ctypes.c_ulong,
                       ctypes.POINTER(_IoVec), ctypes.c_ulong, ctypes.c_ulong]
    return _libc.process_vm_readv


class ProcessMemory:
    """Reads from one process's address space."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.reads = 0  # number of system calls made, for budgets and tests

    def read(self, address: int, size: int) -> bytes | None:
        """`size` bytes at `address`, or None when any of them cannot be read."""
        if size <= 0 or size > MAX_READ or not 0 < address < (1 << 64) - size:
            return None
        buf = ctypes.create_string_buffer(size)
        local = _IoVec(ctypes.cast(buf, ctypes.c_void_p), size)
        remote = _IoVec(address, size)
        self.reads += 1
        got = _vm_readv()(self.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if got != size:
            return None
        return buf.raw

    def read_u64(self, address: int) -> int | None:
        """One little-endian unsigned 64-bit value, or None."""
        data = self.read(address, 8)
        return None if data is None else int(struct.unpack("<Q", data)[0])

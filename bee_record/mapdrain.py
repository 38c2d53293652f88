"""Read and clear BPF hash maps in batches, as raw bytes.

A drain reads thousands of entries a second; building a ctypes object per key and value
(as bcc's `items_lookup_and_delete_batch` does, into arrays it allocates anew at every
call) costs more than everything else a drain does per entry. `BatchDrain` reads into
buffers allocated once per map shape and hands back the keys and values as bytes, which
callers cut and unpack with `struct`. Kernels without batch operations (before 5.6) are
read entry by entry through the table object instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
from collections.abc import Callable
from typing import Any

#: bcc's `lib.bpf_lookup_and_delete_batch(fd, in_batch, out_batch, keys, values, count)`
BatchFunc = Callable[..., int]
#: errno values of a kernel without batch operations for a map type (524: ENOTSUPP)
_UNSUPPORTED = (errno.EINVAL, errno.EOPNOTSUPP, 524)
#: Entries read per batch call: buffers stay small (a user stack is 1 KiB) whatever the
#: map's size; the kernel refuses a batch only if one hash bucket holds more than this.
CHUNK_ENTRIES = 1024


class BatchDrain:
    """Reads and clears maps with one key and value size, a chunk of entries at a time."""

    def __init__(self, key_size: int, value_size: int, capacity: int,
                 batch: BatchFunc | None) -> None:
        """`capacity`: the largest max_entries of the maps this reader drains."""
        self.key_size, self.value_size, self.capacity = key_size, value_size, capacity
        self._batch = batch
        self._chunk = max(1, min(capacity, CHUNK_ENTRIES))
        self._keys = ctypes.create_string_buffer(key_size * self._chunk)
        self._values = ctypes.create_string_buffer(value_size * self._chunk)

    @classmethod
    def for_table(cls, table: Any, batch: BatchFunc | None) -> BatchDrain:
        """A reader sized for a bcc table (and any other of the same shape and size)."""
        return cls(ctypes.sizeof(table.Key), ctypes.sizeof(table.Leaf),
                   int(table.max_entries), batch)

    def drain(self, table: Any) -> tuple[int, bytes, bytes]:
        """(entries, their keys, their values) of `table`, which is left empty.

        Keys and values are packed back to back, `key_size` and `value_size` bytes each.
        """
        if self._batch is not None:
            got = self._drain_batch(int(table.map_fd))
            if got is not None:
                return got
            self._batch = None  # not supported here: read entry by entry from now on
        return self._drain_slow(table)

    def _drain_batch(self, fd: int) -> tuple[int, bytes, bytes] | None:
        """The batch read, or None if the kernel refuses batch operations on this map."""
        assert self._batch is not None
        token, count = ctypes.c_uint32(0), ctypes.c_uint32(0)
        keys: list[bytes] = []
        values: list[bytes] = []
        total = 0
        while total < self.capacity:  # entries added while reading wait for the next drain
            count.value = self._chunk
            res = self._batch(fd, ctypes.byref(token) if total else None, ctypes.byref(token),
                              self._keys, self._values, ctypes.byref(count))
            err = ctypes.get_errno() if res != 0 else 0
            # a refused call (EINVAL ...) leaves `count` as it was given: nothing was read
            n = 0 if err in _UNSUPPORTED else count.value
            if n:
                keys.append(ctypes.string_at(self._keys, n * self.key_size))
                values.append(ctypes.string_at(self._values, n * self.value_size))
                total += n
            if res != 0:
                if total == 0 and err in _UNSUPPORTED:
                    return None
                break  # ENOENT: every entry read
            if n == 0:
                break  # no progress: the rest waits for the next drain
        return total, b"".join(keys), b"".join(values)

    def _drain_slow(self, table: Any) -> tuple[int, bytes, bytes]:
        """Entry by entry, deleting each key read (entries added meanwhile stay)."""
        keys, values = bytearray(), bytearray()
        n = 0
        for k, v in list(table.items()):
            with contextlib.suppress(KeyError):
                del table[k]
            keys += bytes(k)
            values += bytes(v)
            n += 1
        return n, bytes(keys), bytes(values)


__all__ = ["CHUNK_ENTRIES", "BatchDrain", "BatchFunc"]

"""Draining BPF hash maps as raw bytes (bee_record/mapdrain.py) and cutting what they hold.

The kernel's batch call is stood in for by a function with its contract: it copies up to
`count` entries after the `in_batch` position, sets `count` and the resume token, and
fails with ENOENT once the map is exhausted.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from typing import Any

from bee_record.mapdrain import CHUNK_ENTRIES, BatchDrain
from bee_record.sampler import PyStackLayout, _unwound_addresses


class _Table:
    """A hash map with 8-byte keys and 16-byte values, readable like a bcc table."""

    Key = ctypes.c_uint64

    class Leaf(ctypes.Structure):
        _fields_ = [("count", ctypes.c_uint64), ("weight", ctypes.c_uint64)]

    def __init__(self, n: int, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self.map_fd = 99
        self.data = {k: (k * 3, k * 5) for k in range(n)}

    def items(self) -> list[tuple[Any, Any]]:
        return [(self.Key(k), self.Leaf(*v)) for k, v in self.data.items()]

    def __delitem__(self, key: Any) -> None:
        del self.data[key.value]


def _kernel(table: _Table, calls: list[int]) -> Any:
    """A stand-in for bpf_lookup_and_delete_batch over `table`."""

    def batch(fd: int, in_batch: Any, out_batch: Any, keys: Any, values: Any,
              count: Any) -> int:
        assert fd == table.map_fd
        want = count._obj.value
        calls.append(want)
        taken = sorted(table.data)[:want]
        kbuf = b"".join(struct.pack("<Q", k) for k in taken)
        vbuf = b"".join(struct.pack("<QQ", *table.data[k]) for k in taken)
        ctypes.memmove(keys, kbuf, len(kbuf))
        ctypes.memmove(values, vbuf, len(vbuf))
        for k in taken:
            del table.data[k]
        count._obj.value = len(taken)
        if len(taken) < want:
            ctypes.set_errno(errno.ENOENT)
            return -1
        return 0

    return batch


def test_a_map_larger_than_a_chunk_is_read_whole_and_left_empty() -> None:
    # GIVEN a map of 2.5 chunks of entries
    n = CHUNK_ENTRIES * 5 // 2
    table, calls = _Table(n), []
    reader = BatchDrain.for_table(table, _kernel(table, calls))
    # WHEN it is drained
    got, keys, values = reader.drain(table)
    # THEN every entry comes out once, in chunks, and the map is empty
    assert got == n and len(calls) == 3 and not table.data
    assert [k for (k,) in struct.iter_unpack("<Q", keys)] == list(range(n))
    assert list(struct.iter_unpack("<QQ", values))[7] == (21, 35)


def test_an_empty_map_gives_nothing() -> None:
    table, calls = _Table(0), []
    assert BatchDrain.for_table(table, _kernel(table, calls)).drain(table) == (0, b"", b"")


def test_without_kernel_batch_support_entries_are_read_one_by_one() -> None:
    # GIVEN a kernel refusing batch operations (EINVAL before anything was read)
    table = _Table(5)

    def refuse(*args: Any) -> int:
        ctypes.set_errno(errno.EINVAL)
        return -1

    reader = BatchDrain.for_table(table, refuse)
    # WHEN it is drained twice (entries added in between)
    first = reader.drain(table)
    table.data[9] = (1, 2)
    second = reader.drain(table)
    # THEN both reads give the entries as bytes and empty the map
    assert first[0] == 5 and struct.unpack_from("<QQ", first[2], 32) == (6, 10)
    assert second == (1, struct.pack("<Q", 9), struct.pack("<QQ", 1, 2)) and not table.data


def test_python_stacks_are_cut_from_their_struct_bytes() -> None:
    # GIVEN a struct bee_py_stack of 4 slots holding 2 frames, marked truncated
    class Stack(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint32), ("pid", ctypes.c_uint32),
                    ("code", ctypes.c_uint64 * 4), ("info", ctypes.c_uint32 * 4),
                    ("hash", ctypes.c_uint64)]

    st = Stack(2 | 0x80000000, 77, (ctypes.c_uint64 * 4)(0xA0, 0xB0, 0xDEAD, 0),
               (ctypes.c_uint32 * 4)(3, 0x80000004, 9, 0), 0)
    layout = PyStackLayout.of(Stack)
    # WHEN it is read at an offset within a drained buffer
    data = b"\xff" * 8 + bytes(st)
    # THEN the two frames come out, then the cut marker; the third slot is ignored
    assert layout.slots == 4
    assert layout.frames(data, 8) == ((0xA0, 3), (0xB0, 0x80000004), (0, 0))


def test_unwound_stacks_never_read_past_their_slots() -> None:
    # GIVEN a struct bee_ustack of 3 slots whose len claims 50
    value = struct.pack("<II3Q", 50, 0, 1, 2, 3)
    # THEN only the slots it has are read
    assert _unwound_addresses(value, 0, len(value)) == (1, 2, 3)
    assert _unwound_addresses(struct.pack("<II3Q", 2, 0, 1, 2, 3), 0, 32) == (1, 2)

"""The `py_new` notices BPF sends for each new Python stack (bpf/python.c, bee_py_notify)."""

from __future__ import annotations

import struct

from bee_record.sampler import python_notice


def test_notice_gives_pid_and_code_addresses() -> None:
    # GIVEN a notice of a truncated 3-frame stack of pid 4242 (len has bit 31 set)
    data = struct.pack("<II3Q", 3 | 0x80000000, 4242, 0x7F00, 0x7F80, 0x8000)
    # WHEN it is decoded
    pid, codes = python_notice(data)
    # THEN the pid and the three code addresses come out, in order
    assert (pid, codes) == (4242, (0x7F00, 0x7F80, 0x8000))


def test_notice_is_bounded_by_its_size_and_skips_null_codes() -> None:
    # GIVEN a notice claiming 100 frames but carrying two (one of them null), and a runt
    data = struct.pack("<II2Q", 100, 7, 0, 0x1234)
    # THEN only what the bytes hold is read, without the null address
    assert python_notice(data) == (7, (0x1234,))
    assert python_notice(b"\x01\x00") == (0, ())

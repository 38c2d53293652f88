"""Struct offsets of the CPython versions bee walks (3.10 to 3.13), 64-bit only.

3.10 to 3.12 come from tables (checked against each version's headers in
tests/test_python_layout.py); 3.13 publishes its own offsets in `_Py_DebugOffsets` at the
start of `_PyRuntime`, which `from_debug_offsets` reads. The numbers are also what the
BPF walker receives per process (see `bpf/python.c`, struct bee_py_proc).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

#: How frames chain and how an eval-loop activation is marked, per version family.
MODEL_FRAME_OBJECTS = 310  # 3.10: PyFrameObject.f_back; every frame is one eval call
MODEL_IS_ENTRY = 311  # 3.11: _PyInterpreterFrame.is_entry marks an eval call's first frame
MODEL_CSTACK_SHIM = 312  # 3.12+: a shim frame owned by the C stack precedes each eval call

#: `owner` value of the shim frames (FRAME_OWNED_BY_CSTACK, 3.12 and 3.13).
OWNED_BY_CSTACK = 3

_DEBUG_COOKIE = b"xdebugpy"


@dataclass(frozen=True, slots=True)
class PyLayout:
    """Offsets (bytes) of the fields bee reads in one CPython minor version.

    A field a version does not have is -1.
    """

    minor: int  # 10 for 3.10, ...
    model: int  # MODEL_*
    runtime_interp_head: int  # _PyRuntime.interpreters.head
    interp_next: int
    interp_threads_head: int
    tstate_next: int
    tstate_thread_id: int  # pthread_self() of the thread
    tstate_native_thread_id: int  # the kernel thread id (3.11+), -1 in 3.10
    tstate_frame: int  # 3.10 frame, 3.11/3.12 cframe, 3.13 current_frame
    cframe_current_frame: int  # 3.11/3.12 _PyCFrame.current_frame, -1 otherwise
    frame_previous: int  # 3.10 f_back
    frame_code: int  # f_code (3.13: f_executable)
    frame_instr: int  # 3.10 f_lasti (int, code units); 3.11/12 prev_instr; 3.13 instr_ptr
    frame_owner: int  # -1 in 3.10
    frame_is_entry: int  # 3.11 only
    code_adaptive: int  # offset of the instructions in the code object (-1 in 3.10)
    code_filename: int
    code_name: int
    code_qualname: int  # -1 in 3.10 (co_name only)
    code_firstlineno: int
    code_linetable: int
    ob_type: int
    unicode_length: int
    unicode_state: int
    unicode_ascii_size: int  # sizeof(PyASCIIObject): where compact ASCII data starts
    unicode_compact_size: int  # sizeof(PyCompactUnicodeObject): other compact strings
    bytes_size: int  # ob_size of a bytes object
    bytes_sval: int  # its data


_COMMON = dict(
    ob_type=8, unicode_length=16, unicode_state=32, bytes_size=16, bytes_sval=32,
)

TABLES: dict[int, PyLayout] = {
    10: PyLayout(
        minor=10, model=MODEL_FRAME_OBJECTS, runtime_interp_head=32, interp_next=0,
        interp_threads_head=8, tstate_next=8, tstate_thread_id=176,
        tstate_native_thread_id=-1, tstate_frame=24, cframe_current_frame=-1,
        frame_previous=24, frame_code=32, frame_instr=96, frame_owner=-1, frame_is_entry=-1,
        code_adaptive=-1, code_filename=104, code_name=112, code_qualname=-1,
        code_firstlineno=40, code_linetable=120, unicode_ascii_size=48,
        unicode_compact_size=72, **_COMMON,
    ),
    11: PyLayout(
        minor=11, model=MODEL_IS_ENTRY, runtime_interp_head=40, interp_next=0,
        interp_threads_head=16, tstate_next=8, tstate_thread_id=152,
        tstate_native_thread_id=160, tstate_frame=56, cframe_current_frame=8,
        frame_previous=48, frame_code=32, frame_instr=56, frame_owner=69, frame_is_entry=68,
        code_adaptive=184, code_filename=112, code_name=120, code_qualname=128,
        code_firstlineno=72, code_linetable=136, unicode_ascii_size=48,
        unicode_compact_size=72, **_COMMON,
    ),
    12: PyLayout(
        minor=12, model=MODEL_CSTACK_SHIM, runtime_interp_head=40, interp_next=0,
        interp_threads_head=72, tstate_next=8, tstate_thread_id=136,
        tstate_native_thread_id=144, tstate_frame=56, cframe_current_frame=0,
        frame_previous=8, frame_code=0, frame_instr=56, frame_owner=70, frame_is_entry=-1,
        code_adaptive=192, code_filename=112, code_name=120, code_qualname=128,
        code_firstlineno=68, code_linetable=136, unicode_ascii_size=40,
        unicode_compact_size=56, **_COMMON,
    ),
}

#: Minor versions bee can walk.
SUPPORTED = (10, 11, 12, 13)

# _Py_DebugOffsets of 3.13: cookie, version, free_threaded, then groups of u64 each led
# by the group's struct size. Field positions (in u64 units after the cookie).
_DEBUG_GROUPS = (
    ("runtime_state", ("size", "finalizing", "interpreters_head")),
    ("interpreter_state", ("size", "id", "next", "threads_head", "gc", "imports_modules",
                           "sysdict", "builtins", "ceval_gil", "gil_runtime_state",
                           "gil_runtime_state_enabled", "gil_runtime_state_locked",
                           "gil_runtime_state_holder")),
    ("thread_state", ("size", "prev", "next", "interp", "current_frame", "thread_id",
                      "native_thread_id", "datastack_chunk", "status")),
    ("interpreter_frame", ("size", "previous", "executable", "instr_ptr", "localsplus",
                           "owner")),
    ("code_object", ("size", "filename", "name", "qualname", "linetable", "firstlineno",
                     "argcount", "localsplusnames", "localspluskinds", "co_code_adaptive")),
    ("pyobject", ("size", "ob_type")),
    ("type_object", ("size", "tp_name", "tp_repr", "tp_flags")),
    ("tuple_object", ("size", "ob_item", "ob_size")),
    ("list_object", ("size", "ob_item", "ob_size")),
    ("dict_object", ("size", "ma_keys", "ma_values")),
    ("float_object", ("size", "ob_fval")),
    ("long_object", ("size", "lv_tag", "ob_digit")),
    ("bytes_object", ("size", "ob_size", "ob_sval")),
    ("unicode_object", ("size", "state", "length", "asciiobject_size")),
)
#: Bytes of _Py_DebugOffsets that `from_debug_offsets` needs (3.13).
DEBUG_OFFSETS_SIZE = 8 + 8 * (2 + sum(len(fields) for _, fields in _DEBUG_GROUPS))
#: Largest offset a layout may hold: a hostile or corrupt table is refused beyond it.
MAX_OFFSET = 1 << 16


class LayoutError(ValueError):
    """The interpreter's own offsets are unusable (not 3.13, free-threaded, corrupt)."""


def from_debug_offsets(data: bytes) -> PyLayout:
    """The layout of a 3.13 interpreter from the `_Py_DebugOffsets` bytes it carries.

    Raises LayoutError for anything but a plausible 3.13 table of a default (GIL) build.
    """
    if len(data) < DEBUG_OFFSETS_SIZE or data[:8] != _DEBUG_COOKIE:
        raise LayoutError("no _Py_DebugOffsets cookie")
    values = struct.unpack_from(f"<{(DEBUG_OFFSETS_SIZE - 8) // 8}Q", data, 8)
    version, free_threaded = values[0], values[1]
    if (version >> 24) != 3 or ((version >> 16) & 0xFF) != 13:
        raise LayoutError(f"_Py_DebugOffsets of version {version:#x}, not 3.13")
    if free_threaded:
        raise LayoutError("free-threaded builds are not supported")
    got: dict[str, int] = {}
    pos = 2
    for group, fields in _DEBUG_GROUPS:
        for name in fields:
            got[f"{group}.{name}"] = values[pos]
            pos += 1
    ascii_size = got["unicode_object.asciiobject_size"]
    layout = replace(
        TABLES[12], minor=13, model=MODEL_CSTACK_SHIM,
        runtime_interp_head=got["runtime_state.interpreters_head"],
        interp_next=got["interpreter_state.next"],
        interp_threads_head=got["interpreter_state.threads_head"],
        tstate_next=got["thread_state.next"],
        tstate_thread_id=got["thread_state.thread_id"],
        tstate_native_thread_id=got["thread_state.native_thread_id"],
        tstate_frame=got["thread_state.current_frame"], cframe_current_frame=-1,
        frame_previous=got["interpreter_frame.previous"],
        frame_code=got["interpreter_frame.executable"],
        frame_instr=got["interpreter_frame.instr_ptr"],
        frame_owner=got["interpreter_frame.owner"], frame_is_entry=-1,
        code_adaptive=got["code_object.co_code_adaptive"],
        code_filename=got["code_object.filename"], code_name=got["code_object.name"],
        code_qualname=got["code_object.qualname"],
        code_firstlineno=got["code_object.firstlineno"],
        code_linetable=got["code_object.linetable"], ob_type=got["pyobject.ob_type"],
        unicode_length=got["unicode_object.length"], unicode_state=got["unicode_object.state"],
        unicode_ascii_size=ascii_size, unicode_compact_size=ascii_size + 16,
        bytes_size=got["bytes_object.ob_size"], bytes_sval=got["bytes_object.ob_sval"],
    )
    check(layout)
    return layout


def check(layout: PyLayout) -> None:
    """Refuse offsets that are negative where required or implausibly large."""
    for name in layout.__dataclass_fields__:
        value = getattr(layout, name)
        if name in ("minor", "model"):
            continue
        if not -1 <= value < MAX_OFFSET:
            raise LayoutError(f"offset {name}={value} out of range")

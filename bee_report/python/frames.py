"""Python frames of a sample, and where they go among its native frames.

Each `_PyEval_EvalFrameDefault` activation in the native stack is replaced by the Python
frames it ran: the recorded Python stack is cut after each entry frame (the first frame of
an eval call) into one group per activation, and groups are matched to activations from
the leaf, since a native stack that stops early loses its outer (root) frames. Groups left
without an activation (native stacks stopped before reaching one, as in binaries without
frame pointers) go at the root, above the native frames they called, so no Python frame is
ever dropped. Activations left without a group stay as native frames.
"""

from __future__ import annotations

from collections.abc import Sequence

from bee_contract.recording import PY_ENTRY, PY_TRUNCATED, PythonInfo
from bee_report.profile import Frame, FrameKind, python_name
from bee_report.python.lines import LineIndex

#: The C function of CPython's eval loop (one activation per group of Python frames).
EVAL_FUNCTION = "_PyEval_EvalFrameDefault"
TRUNCATED = "[more Python frames]"
UNKNOWN = "[unknown Python code]"


def python_frames(info: PythonInfo, stack: Sequence[tuple[int, int]]
                  ) -> list[list[Frame]]:
    """The frames of a recorded Python stack, in groups per eval call, leaf first.

    Frames inside each group are leaf first too.
    """
    return PythonNamer(info).groups(stack)


class PythonNamer:
    """Names the Python stacks of one recorded process: each distinct (code object,
    instruction) is named once, and each code object's line table decoded once."""

    def __init__(self, info: PythonInfo) -> None:
        self.info = info
        self._frames: dict[tuple[int, int], Frame] = {}
        self._lines: dict[int, LineIndex] = {}

    def groups(self, stack: Sequence[tuple[int, int]]) -> list[list[Frame]]:
        """The frames of a recorded Python stack, in groups per eval call, leaf first.

        Frames inside each group are leaf first too.
        """
        groups: list[list[Frame]] = [[]]
        for code_index, value in stack:
            if code_index == PY_TRUNCATED:
                groups[-1].append(Frame(TRUNCATED, FrameKind.PYTHON))
                continue
            index = value & ~PY_ENTRY
            frame = self._frames.get((code_index, index))
            if frame is None:
                frame = self._frames[code_index, index] = self._frame(code_index, index)
            groups[-1].append(frame)
            if value & PY_ENTRY:
                groups.append([])
        return [g for g in groups if g]

    def _frame(self, code_index: int, index: int) -> Frame:
        code = self.info.codes[code_index]
        if not code.qualname and not code.filename:
            return Frame(UNKNOWN, FrameKind.PYTHON, address=code.address)
        lines = self._lines.get(code_index)
        if lines is None:
            lines = self._lines[code_index] = LineIndex(self.info.version, code.linetable,
                                                        code.firstlineno)
        line = lines.line(index)
        return Frame(python_name(code.qualname, code.filename, code.firstlineno),
                     FrameKind.PYTHON, "[python]", code.filename,
                     line if line is not None else code.firstlineno, code.address)


def merge(native: Sequence[Frame], groups: list[list[Frame]]) -> list[Frame]:
    """Native user frames (root first) with each eval activation replaced by its group."""
    evals = [i for i, f in enumerate(native) if f.name == EVAL_FUNCTION
             and f.kind is not FrameKind.INLINED]
    by_position: dict[int, list[Frame]] = {}
    for group, position in zip(groups, reversed(evals), strict=False):
        by_position[position] = group
    out: list[Frame] = []
    for group in reversed(groups[len(by_position):]):  # unmatched, outermost first
        out.extend(reversed(group))
    for i, frame in enumerate(native):
        matched = by_position.get(i)
        if matched is None:
            out.append(frame)
        else:
            out.extend(reversed(matched))
    return out

"""Frame kinds and colour palettes for flame graphs.

Frame kinds follow flamegraph.pl's suffix annotations on folded frames: ``name_[k]`` is a
kernel frame, ``name_[j]`` a JIT frame, ``name_[i]`` an inlined frame, ``name_[py]`` a
Python function (blue); an unsuffixed frame
is native user code, except the first frame of a stack (the process name or a
``cpu_N``/``pid_N`` grouping root), which is a root frame.

Every colour is derived from a CRC of the frame name, never from a random source, so the
same input always gives the same picture.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable

from bee_report.profile import FrameKind

KIND_ALL = "all"
"""The kind of the synthetic "all" frame under every stack (the others are FrameKinds)."""

_GROUPING_ROOT = re.compile(r"(?:cpu|pid|tid)_\d+\Z")

SEARCH_COLOR = "rgb(230,0,230)"
"""Fill of frames matched by the interactive search (magenta, as flamegraph.pl)."""

BACKGROUNDS: dict[str, tuple[str, str]] = {
    "bee": ("#f8f8f8", "#e6e6ee"),
    "hot": ("#eeeeee", "#eeeeb0"),
    "java": ("#eeeeee", "#eeeeb0"),
    "mem": ("#eeeeee", "#e0e0ff"),
    "io": ("#f8f8f8", "#e8e8e8"),
    "diff": ("#f8f8f8", "#e8e8e8"),
}
"""Top and bottom colours of the background gradient, by palette (and ``diff``)."""

ALL_COLOR = "rgb(200,200,200)"


def frame_kind(name: str, before: Iterable[str]) -> FrameKind:
    """The kind of frame ``name``, given the frames ``before`` it in its root-first stack.

    The process name, and the ``cpu_N``/``pid_N``/``tid_N`` grouping frames above it, are
    root frames: a frame is one when unsuffixed and only grouping frames precede it.
    """
    kind = FrameKind.split_folded(name)[1]
    if kind is not None:
        return kind
    if all(_GROUPING_ROOT.match(f) for f in before):
        return FrameKind.ROOT
    return FrameKind.USER


def _hash3(name: str) -> tuple[float, float, float]:
    """Three deterministic numbers in [0, 1] from a name (stable across runs and hosts)."""
    h = zlib.crc32(name.encode("utf-8", "replace"))
    return (h & 0x3FF) / 1023.0, ((h >> 10) & 0x3FF) / 1023.0, ((h >> 20) & 0x3FF) / 1023.0


def _rgb(r: float, g: float, b: float) -> str:
    return f"rgb({int(r)},{int(g)},{int(b)})"


def _bee(name: str, kind: str) -> str:
    v1, v2, v3 = _hash3(name)
    if kind == FrameKind.KERNEL:  # orange
        return _rgb(235 + 20 * v1, 150 + 45 * v2, 30 + 40 * v3)
    if kind == FrameKind.JIT:  # green
        return _rgb(60 + 50 * v1, 175 + 45 * v2, 60 + 40 * v3)
    if kind == FrameKind.INLINED:  # aqua
        return _rgb(60 + 45 * v1, 185 + 40 * v2, 200 + 35 * v3)
    if kind == FrameKind.PYTHON:  # Python blue-yellow: blue
        return _rgb(70 + 40 * v1, 120 + 45 * v2, 215 + 35 * v3)
    if kind == FrameKind.ROOT:  # lavender
        return _rgb(175 + 25 * v1, 165 + 25 * v2, 215 + 25 * v3)
    if kind == KIND_ALL:
        return ALL_COLOR
    return _rgb(205 + 45 * v1, 60 + 45 * v2, 50 + 30 * v3)  # native user: red


def _hot(name: str, kind: str) -> str:
    if kind == KIND_ALL:
        return ALL_COLOR
    v1, v2, v3 = _hash3(name)
    return _rgb(205 + 50 * v3, 230 * v1, 55 * v2)


def _mem(name: str, kind: str) -> str:
    if kind == KIND_ALL:
        return ALL_COLOR
    v1, v2, _ = _hash3(name)
    return _rgb(0, 190 + 50 * v2, 210 * v1)


def _io(name: str, kind: str) -> str:
    if kind == KIND_ALL:
        return ALL_COLOR
    v1, v2, _ = _hash3(name)
    r = 80 + 60 * v1
    return _rgb(r, r, 190 + 55 * v2)


_JAVA_PACKAGE = re.compile(r"L?(?:java|javax|jdk|net|org|com|io|sun)/")


def _java(name: str, kind: str) -> str:
    """flamegraph.pl's ``java`` palette: by suffix, package prefix and C++ ``::``."""
    if kind == KIND_ALL:
        return ALL_COLOR
    v1 = _hash3(name)[0]
    label = FrameKind.split_folded(name)[0]
    if kind == FrameKind.JIT or _JAVA_PACKAGE.match(label) or ":::" in label:
        return _rgb(50 + 60 * v1, 200 + 55 * v1, 50 + 60 * v1)  # green
    if kind == FrameKind.INLINED:
        return _rgb(50 + 60 * v1, 165 + 55 * v1, 165 + 55 * v1)  # aqua
    if kind == FrameKind.KERNEL:
        return _rgb(190 + 65 * v1, 90 + 65 * v1, 0)  # orange
    if "::" in label:
        return _rgb(175 + 55 * v1, 175 + 55 * v1, 50 + 20 * v1)  # yellow
    return _rgb(200 + 55 * v1, 50 + 80 * v1, 50 + 80 * v1)  # red


_PALETTE_FUNCS: dict[str, Callable[[str, str], str]] = {
    "bee": _bee,
    "hot": _hot,
    "mem": _mem,
    "io": _io,
    "java": _java,
}


def palette(name: str) -> Callable[[str, str], str]:
    """The colour function ``(raw frame name, kind) -> "rgb(r,g,b)"`` of a palette."""
    return _PALETTE_FUNCS[name]


def diff_color(delta: float, max_delta: float) -> str:
    """Colour of a differential frame: red grew, blue shrank, white unchanged.

    ``delta`` is the change in the frame's share of all samples (new minus base) and
    ``max_delta`` the largest absolute change in the graph; intensity is their ratio.
    """
    if max_delta <= 0.0 or abs(delta) < 1e-12:
        return "rgb(250,250,250)"
    fade = round(60 + 150 * (1.0 - min(abs(delta) / max_delta, 1.0)))  # keeps labels legible
    if delta > 0:
        return f"rgb(255,{fade},{fade})"
    return f"rgb({fade},{fade},255)"

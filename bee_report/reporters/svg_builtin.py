"""bee's built-in flame graph renderer: one self-contained, interactive SVG file.

In the spirit of flamegraph.pl: folded stacks are merged into frames (children in name
order, so the same input always gives byte-identical output), frames narrower than
``minwidth`` pixels are elided, and each drawn frame becomes a ``<g>`` with a ``<title>``
tooltip, a ``<rect>`` and a label truncated to fit. The embedded JavaScript
(``flamegraph.js``, package data) adds click-to-zoom, Reset Zoom, regex Search with
"Matched: X.X%", ``?s=REGEX`` in the URL, and a details line.

Frames are emitted flat in depth-first order, each carrying its offset and count in
samples (``data-o``, ``data-v``): the script derives ancestry from exact containment, and
no stack depth can exceed a browser's XML nesting limit.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING

from bee_contract.errors import ReportError
from bee_report.profile import FrameKind
from bee_report.reporters.flame_palette import (
    BACKGROUNDS,
    KIND_ALL,
    SEARCH_COLOR,
    diff_color,
    frame_kind,
    palette,
)

if TYPE_CHECKING:
    from bee_report.reporters.options import FlameOptions

Row = tuple[Sequence[str], int, int]
"""A folded stack for this module: (root-first frames, width count, base count for diffs)."""

XPAD = 10  # left and right padding, pixels
FRAME_HEIGHT = 16
FRAME_PAD = 1  # vertical gap between frames
FONT_SIZE = 12
FONT_WIDTH = 0.59  # average glyph width relative to FONT_SIZE (as flamegraph.pl)
YPAD_BOTTOM = FONT_SIZE * 2 + 10  # room for the details line

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#39;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)

_STYLE = """text { font-family: Verdana, "DejaVu Sans", sans-serif; font-size: 12px; fill: #000; }
#title { font-size: 17px; text-anchor: middle; }
#subtitle { text-anchor: middle; fill: #808080; }
#search, #matched { text-anchor: end; }
#search, #unzoom { cursor: pointer; fill: #404040; }
#search:hover, #unzoom:hover { text-decoration: underline; }
#nosamples { font-size: 17px; text-anchor: middle; fill: #808080; }
.f { cursor: pointer; }
.f:hover > rect { stroke: #000; stroke-width: 0.5; }
.f > text { pointer-events: none; }
.hide { display: none; }
.parent { opacity: 0.5; }"""


def text(value: str) -> str:
    """Escape ``value`` for XML character data (also dropping characters XML forbids)."""
    return _INVALID_XML.sub("\ufffd", value).translate(_TEXT)


def attr(value: str) -> str:
    """Escape ``value`` for a double-quoted XML attribute."""
    return _INVALID_XML.sub("\ufffd", value).translate(_ATTR)


@cache
def script() -> str:
    """The embedded JavaScript (package data ``flamegraph.js``)."""
    js = resources.files("bee_report.reporters").joinpath("flamegraph.js").read_text("utf-8")
    if "]]>" in js:  # pragma: no cover - guards the CDATA section
        raise ReportError("flamegraph.js must not contain ']]>'")
    return js


@dataclass(frozen=True, slots=True)
class DrawnFrame:
    """One drawn frame: folded name, kind, depth and its span and counts in samples."""

    name: str
    kind: str  # a FrameKind, or KIND_ALL for the "all" frame
    depth: int
    offset: int  # samples to its left
    value: int  # its width in samples (the new count of a diff)
    base: int  # the base count of a diff, else 0


@dataclass(frozen=True, slots=True)
class Layout:
    """The frames to draw in depth-first order, with the totals they are measured by."""

    frames: list[DrawnFrame]
    max_depth: int
    total: int
    base_total: int


def check_counts(rows: Iterable[Row]) -> None:
    """Raise :class:`ReportError` if any count is negative."""
    for frames, value, base in rows:
        if value < 0 or base < 0:
            raise ReportError(f"negative sample count for stack {';'.join(frames)!r}")


def layout(rows: Iterable[Row], reverse: bool, minwidth: float, plot_width: float) -> Layout:
    """Merge folded stacks and place the frames at least ``minwidth`` pixels wide.

    Stacks (leaf first when ``reverse``) are summed per distinct stack and sorted; then
    each frame is one run of stacks sharing a prefix, found by bisection, and its count a
    difference of prefix sums. A frame narrower than ``minwidth`` is elided with its whole
    subtree without visiting it (its samples still count in its parent's width), so big
    inputs cost little more than the sort. Children are laid out left to right in name
    order from their parent's left edge; self time is the gap on the right.
    """
    merged: dict[tuple[str, ...], list[int]] = {}
    for frames, value, base in rows:
        key = tuple(reversed(frames)) if reverse else tuple(frames)
        slot = merged.get(key)
        if slot is None:
            merged[key] = [value, base]
        else:
            slot[0] += value
            slot[1] += base
    keys = sorted(merged)
    values = [0, *accumulate(merged[k][0] for k in keys)]
    bases = [0, *accumulate(merged[k][1] for k in keys)]
    total, base_total = values[-1], bases[-1]
    if total <= 0:
        return Layout([], 0, 0, base_total)
    min_value = minwidth * total / plot_width
    placed: list[DrawnFrame] = []
    max_depth = 0
    # (first stack, end stack, frame) of frames still to visit; their stacks share a prefix
    todo = [(0, len(keys), DrawnFrame("all", KIND_ALL, 0, 0, total, base_total))]
    while todo:
        lo, hi, frame = todo.pop()
        placed.append(frame)
        depth = frame.depth
        max_depth = max(max_depth, depth)
        if len(keys[lo]) == depth:  # the stack that ends here: self samples
            lo += 1
        offset = frame.offset
        kids = []
        at_depth = itemgetter(depth)
        while lo < hi:
            name = keys[lo][depth]
            end = bisect_right(keys, name, lo, hi, key=at_depth)
            value = values[end] - values[lo]
            if value > 0 and value >= min_value:
                kind = _kind(keys[lo], depth, reverse)
                child = DrawnFrame(name, kind, depth + 1, offset, value, bases[end] - bases[lo])
                kids.append((lo, end, child))
            offset += value
            lo = end
        todo.extend(reversed(kids))
    return Layout(placed, max_depth, total, base_total)


def _kind(key: tuple[str, ...], depth: int, reverse: bool) -> str:
    """The kind of frame ``key[depth]``, knowing the frames before it in the original stack."""
    return frame_kind(key[depth], key[depth + 1 :] if reverse else key[:depth])


def fit(label: str, width: float) -> str:
    """The label shown in a frame ``width`` pixels wide (same rule as flamegraph.js)."""
    chars = int((width - 6) / (FONT_SIZE * FONT_WIDTH))
    if chars < 3:
        return ""
    return label if len(label) <= chars else label[: chars - 2] + ".."


def render(rows: Iterable[Row], options: FlameOptions, *, diff: bool) -> str:
    """Render ``rows`` (see :data:`Row`) to an SVG document string."""
    title = options.title
    if options.inverted and title == "Flame Graph":
        title = "Icicle Graph"
    top = FONT_SIZE * 3 + (FONT_SIZE * 2 if options.subtitle else 0)
    plot_width = options.width - 2 * XPAD
    laid = layout(rows, options.reverse, options.minwidth, plot_width)
    if laid.total <= 0:
        return _empty(options, title, top)

    total, base_total = laid.total, laid.base_total
    scale = plot_width / total
    height = top + (laid.max_depth + 1) * FRAME_HEIGHT + YPAD_BOTTOM
    out = _header(options, title, height, diff, total)
    out.append('<g id="frames">\n')
    count_name = options.count_name
    color_of = palette(options.colors)
    max_delta = 0.0
    if diff:
        max_delta = max(abs(_delta(f, total, base_total)) for f in laid.frames)
    labels: dict[tuple[str, str], tuple[str, str, str]] = {}
    bottom = height - YPAD_BOTTOM
    for frame in laid.frames:
        key = (frame.name, frame.kind)
        cached = labels.get(key)
        if cached is None:
            label = FrameKind.split_folded(frame.name)[0]
            color = "" if diff else color_of(frame.name, frame.kind)
            cached = labels[key] = (label, attr(label), color)
        label, label_attr, color = cached
        value = frame.value
        x = XPAD + frame.offset * scale
        w = value * scale
        if options.inverted:
            y = top + frame.depth * FRAME_HEIGHT
        else:
            y = bottom - (frame.depth + 1) * FRAME_HEIGHT + FRAME_PAD
        pct = 100.0 * value / total
        kind = frame.kind
        tag = kind.tag if isinstance(kind, FrameKind) else ""
        if diff:
            bpct = 100.0 * frame.base / base_total if base_total else 0.0
            delta = _delta(frame, total, base_total)
            color = diff_color(delta, max_delta)
            info = (
                f"{label}{tag} (base {frame.base:,}, new {value:,} {count_name};"
                f" {bpct:.2f}% -> {pct:.2f}%, {100.0 * delta:+.2f}%)"
            )
        elif frame.kind == KIND_ALL:
            info = f"all ({value:,} {count_name}, 100%)"
        else:
            info = f"{label}{tag} ({value:,} {count_name}, {pct:.2f}%)"
        out.append(
            f'<g class="f" data-n="{label_attr}" data-o="{frame.offset}" data-v="{value}">'
            f"<title>{text(info)}</title>"
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{FRAME_HEIGHT - FRAME_PAD}"'
            f' fill="{color}" rx="2" ry="2"/>'
            f'<text x="{x + 3:.1f}" y="{y + 10.5:.1f}">{text(fit(label, w))}</text></g>\n'
        )
    out.append("</g>\n</svg>\n")
    return "".join(out)


def _delta(frame: DrawnFrame, total: int, base_total: int) -> float:
    """Change of the frame's share of all samples, new minus base, as a fraction."""
    base_share = frame.base / base_total if base_total else 0.0
    return frame.value / total - base_share


def _head(
    options: FlameOptions, title: str, height: int, background: str, script_text: str
) -> list[str]:
    """Root element, style, optional script, background, title and subtitle."""
    width = options.width
    bg1, bg2 = BACKGROUNDS[background]
    onload = ' onload="init(evt)"' if script_text else ""
    out = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n',
        f'<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}"{onload}>\n',
        "<!-- Flame graph drawn by bee from folded stacks. -->\n",
        '<defs><linearGradient id="background" x1="0" y1="0" x2="0" y2="1">'
        f'<stop stop-color="{bg1}" offset="5%"/><stop stop-color="{bg2}" offset="95%"/>'
        "</linearGradient></defs>\n",
        f'<style type="text/css"><![CDATA[\n{_STYLE}\n]]></style>\n',
    ]
    if script_text:
        out.append(f'<script type="text/ecmascript"><![CDATA[\n{script_text}]]></script>\n')
    out += [
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="url(#background)"/>\n',
        f'<text id="title" x="{width / 2:.1f}" y="{FONT_SIZE * 2}">{text(title)}</text>\n',
    ]
    if options.subtitle:
        out.append(
            f'<text id="subtitle" x="{width / 2:.1f}" y="{FONT_SIZE * 4}">'
            f"{text(options.subtitle)}</text>\n"
        )
    return out


def _header(options: FlameOptions, title: str, height: int, diff: bool, total: int) -> list[str]:
    """Everything before the frames: the head, the script and the controls."""
    width = options.width
    config = json.dumps(
        {
            "fontsize": FONT_SIZE,
            "fontwidth": FONT_WIDTH,
            "searchcolor": SEARCH_COLOR,
            "total": total,
            "width": width,
            "xpad": XPAD,
        },
        sort_keys=True,
    )
    background = "diff" if diff else options.colors
    out = _head(options, title, height, background, f"var bee = {config};\n{script()}")
    low = height - YPAD_BOTTOM // 2
    out += [
        f'<text id="details" x="{XPAD}" y="{low}"> </text>\n',
        f'<text id="unzoom" class="hide" x="{XPAD}" y="{FONT_SIZE * 2}">Reset Zoom</text>\n',
        f'<text id="search" x="{width - XPAD}" y="{FONT_SIZE * 2}">Search</text>\n',
        f'<text id="matched" x="{width - XPAD}" y="{low}"> </text>\n',
    ]
    return out


def _empty(options: FlameOptions, title: str, top: int) -> str:
    """A valid, script-free SVG that says "No samples"."""
    height = top + 3 * FONT_SIZE
    out = _head(options, title, height, "bee", "")
    out.append(
        f'<text id="nosamples" x="{options.width / 2:.1f}" y="{top + 2 * FONT_SIZE}">'
        "No samples</text>\n</svg>\n"
    )
    return "".join(out)

"""The timeline: one self-contained HTML file with a FlameScope-style heat map of samples
over time and a flame graph of the range the user drags out on it.

Heat map: columns are seconds (or whole groups of buckets when buckets are 1 s or more),
rows the sub-second time buckets of that second, colour the weight in the bucket; or, in
the thread and CPU views, one row per thread or CPU and columns of time. Dragging over
cells selects a time range; the flame graph below is redrawn for it (in the browser, by
``timeline.js``, with the built-in renderer's ``flamegraph.js`` for zoom and search), and
the range is shown as ``--from``/``--to`` values to paste into ``bee report``.

The embedded data is compact: a table of frames (label, kind, colour), a table of
distinct stacks (frame ids, root first), a table of threads, and one *series* per
(stack, thread, CPU) holding its non-empty buckets, delta-coded, with their weights.
Nothing is fetched from the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from bee_contract.errors import ReportError
from bee_report.diag import warn
from bee_report.profile import Frame, FrameKind, Profile
from bee_report.reporters import svg_builtin
from bee_report.reporters.flame_palette import KIND_ALL, SEARCH_COLOR, frame_kind, palette
from bee_report.reporters.folded import folded_stack
from bee_report.timewindow import iso

if TYPE_CHECKING:
    from bee_report.reporters.options import RenderOptions

#: Upper bound on the buckets of one timeline, so a hostile or absurd span cannot make
#: the page (or this process) allocate without limit: 10 days at 10 ms.
MAX_BUCKETS = 86_400_000
_NS = 1_000_000_000
#: The narrowest frame the page draws, in pixels.
MIN_FRAME_PX = 1.0


@dataclass(frozen=True, slots=True)
class TimelineOptions:
    """How to draw the timeline page."""

    title: str = "Timeline"
    colors: str = "bee"  # flame graph palette (see flame_palette.PALETTES)
    width: int = 1200  # flame graph width in pixels
    #: flame graph: hide frames narrower than this (pixels); at least MIN_FRAME_PX, since
    #: the page redraws on every selection and sub-pixel frames would cost time, not detail
    minwidth: float = 1.0
    lines: bool = False  # file:line in frame names


@cache
def _asset(name: str) -> str:
    text = resources.files("bee_report.reporters").joinpath(name).read_text("utf-8")
    if "</script" in text.lower():  # pragma: no cover - guards the inline script
        raise ReportError(f"{name} must not contain '</script'")
    return text


def resolution(profile: Profile) -> int:
    """The finest time bucket width among the profile's samples (0 when none is timed)."""
    untimed = set(profile.untimed.values())
    timed = {s.span_ns for s in profile if s.span_ns and (s.time_ns, s.span_ns) not in untimed}
    return min(timed, default=0)


def data(profile: Profile, options: TimelineOptions) -> dict[str, object]:
    """The JSON-able model the page draws (see the module docstring).

    The timeline covers the profile's `--from/--to` window, or all of its recordings.
    """
    res = resolution(profile)
    if not res:
        raise ReportError("no time buckets in these recordings (format v1, or no samples): "
                          "the timeline needs recordings made by this bee")
    if profile.untimed:
        warn(f"{', '.join(profile.untimed)}: no time buckets (format v1); left out of the "
             "timeline")
    origin = profile.start_time_ns
    win = profile.window
    first_ns = win[0] if win is not None else origin
    last_ns = win[1] if win is not None else max(profile.end_time_ns, origin + res)
    first = max(0, (first_ns - origin) // res)
    n = -(-(last_ns - origin) // res) - first
    if n > MAX_BUCKETS:
        raise ReportError(f"the timeline would have {n} time buckets (more than "
                          f"{MAX_BUCKETS}); choose a shorter window with --from/--to")
    color_of = palette(options.colors)
    frames: dict[tuple[str, str], int] = {}
    #: label, tooltip tag (" [kernel]"), colour
    frame_rows: list[list[object]] = [["all", "", color_of("all", KIND_ALL)]]
    stacks: dict[tuple[str, ...], int] = {}
    stack_rows: list[list[int]] = []
    threads: dict[tuple[int, int, str, str], int] = {}
    series: dict[tuple[int, int, int], dict[int, int]] = {}
    keys: dict[tuple[int, str], tuple[str, ...]] = {}
    pinned: list[tuple[Frame, ...]] = []  # keeps the ids used as cache keys alive
    untimed = set(profile.untimed.values())
    for s in profile:
        if not s.span_ns or (s.time_ns, s.span_ns) in untimed:
            continue
        b = (s.time_ns - origin) // res - first
        if not 0 <= b < n:
            continue
        ck = (id(s.frames), s.comm)
        key = keys.get(ck)
        if key is None:
            key = keys[ck] = folded_stack(s, options.lines)
            pinned.append(s.frames)
        sid = stacks.get(key)
        if sid is None:
            sid = stacks[key] = len(stack_rows)
            ids = []
            for depth, name in enumerate(key):
                kind = frame_kind(name, key[:depth])
                fk = (name, kind)
                fid = frames.get(fk)
                if fid is None:
                    fid = frames[fk] = len(frame_rows)
                    frame_rows.append([FrameKind.split_folded(name)[0], kind.tag,
                                       color_of(name, kind)])
                ids.append(fid)
            stack_rows.append(ids)
        tk = (s.pid, s.tid, s.comm, s.thread)
        tid = threads.get(tk)
        if tid is None:
            tid = threads[tk] = len(threads)
        cells = series.setdefault((sid, tid, s.cpu), {})
        cells[b] = cells.get(b, 0) + s.weight
    ss, st, sc, off, deltas, weights = [], [], [], [0], [], []
    for (sid, tid, cpu), cells in sorted(series.items()):
        ss.append(sid)
        st.append(tid)
        sc.append(cpu)
        prev = 0
        for b in sorted(cells):
            deltas.append(b - prev)
            weights.append(cells[b])
            prev = b
        off.append(len(deltas))
    unit = "ns" if profile.unit == "nanoseconds" else profile.unit
    return {
        "title": options.title,
        "subtitle": ", ".join(profile.sources),
        "unit": unit,
        "origin_ms": origin // 1_000_000,
        "origin_iso": iso(origin),
        "first": int(first),
        "n": int(n),
        "res_ns": res,
        "frames": frame_rows,
        "stacks": stack_rows,
        "threads": [[pid, tid, comm, thread] for pid, tid, comm, thread in threads],
        "ss": ss, "st": st, "sc": sc, "off": off, "b": deltas, "w": weights,
        "flame": {
            "fontsize": svg_builtin.FONT_SIZE,
            "fontwidth": svg_builtin.FONT_WIDTH,
            "searchcolor": SEARCH_COLOR,
            "total": 0,
            "width": options.width,
            "xpad": svg_builtin.XPAD,
            "minwidth": max(options.minwidth, MIN_FRAME_PX),
            "frameheight": svg_builtin.FRAME_HEIGHT,
            "framepad": svg_builtin.FRAME_PAD,
        },
    }


def render(profile: Profile, options: TimelineOptions) -> str:
    """The timeline page as one HTML document."""
    model = data(profile, options)
    payload = json.dumps(model, separators=(",", ":"), ensure_ascii=True).replace("</", "<\\/")
    title = svg_builtin.text(options.title)
    return _PAGE.format(title=title, style=_STYLE, data=payload,
                        flamegraph=_asset("flamegraph.js"), timeline=_asset("timeline.js"))


class TimelineReporter:
    """`--format timeline`: heat map over time and the flame graph of a selected range."""

    name = "timeline"
    binary = False
    options = ("lines", "flame")

    def render(self, profile: Profile, options: RenderOptions) -> str:
        """The timeline page of a profile (title, palette and widths from the flame options)."""
        f = options.flame
        return render(profile, TimelineOptions(
            title=f.title if f.title != "Flame Graph" else "Timeline", colors=f.colors,
            width=f.width, minwidth=f.minwidth, lines=options.lines))


REPORTER = TimelineReporter()

_STYLE = """body { font-family: Verdana, "DejaVu Sans", sans-serif; font-size: 12px; margin: 8px;
  background: #f8f8f8; color: #000; }
h1 { font-size: 17px; font-weight: normal; margin: 4px 0; }
#subtitle, #legend { color: #606060; }
#controls { margin: 6px 0; }
#controls label { margin-right: 12px; }
#heatwrap { overflow-x: auto; border: 1px solid #ccc; background: #fff; }
#heat { display: block; cursor: crosshair; image-rendering: pixelated; }
#range { margin: 6px 0; font-family: monospace; font-size: 13px; }
#range code { background: #fff; border: 1px solid #ccc; padding: 1px 4px; user-select: all; }
#hover { color: #404040; min-height: 1.2em; }
svg text { font-family: Verdana, "DejaVu Sans", sans-serif; font-size: 12px; fill: #000; }
#search, #matched { text-anchor: end; }
#search, #unzoom { cursor: pointer; fill: #404040; }
#search:hover, #unzoom:hover { text-decoration: underline; }
.f { cursor: pointer; }
.f:hover > rect { stroke: #000; stroke-width: 0.5; }
.f > text { pointer-events: none; }
.hide { display: none; }
.parent { opacity: 0.5; }"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>
{style}
</style></head>
<body>
<h1 id="title">{title}</h1>
<div id="subtitle"></div>
<div id="controls">
<label>rows: <select id="view"><option value="time">sub-second buckets</option>
<option value="thread">one per thread</option><option value="cpu">one per CPU</option>
</select></label>
<label><input type="checkbox" id="logscale" checked> log colour scale</label>
<span id="legend"></span>
</div>
<div id="heatwrap"><canvas id="heat"></canvas></div>
<div id="hover"> </div>
<div id="range"></div>
<svg id="flame" xmlns="http://www.w3.org/2000/svg" width="1200" height="100">
<text id="unzoom" class="hide" x="10" y="20">Reset Zoom</text>
<text id="search" x="1190" y="20">Search</text>
<g id="frames"></g>
<text id="details" x="10" y="90"> </text>
<text id="matched" x="1190" y="90"> </text>
</svg>
<script type="application/json" id="bee-data">{data}</script>
<script>
var D = JSON.parse(document.getElementById("bee-data").textContent), bee = D.flame;
{flamegraph}
{timeline}
</script>
</body></html>
"""

"""The timeline page in a real headless Chromium: drag a range on the heat map, and the
flame graph below shows only that range, with the range as --from/--to to paste."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bee_report.profile import Frame, FrameKind, Profile, StackSample
from bee_report.reporters.timeline import TimelineOptions, render
from tests.test_flamegraph_browser import (  # noqa: F401 - chromium: the browser fixture
    FULL,
    DevTools,
    artifacts,
    center,
    chromium,
    frame_js,
    width_of,
)

pytestmark = pytest.mark.browser

START = 1_764_504_000_000_000_000
RES = 100_000_000


def _profile() -> Profile:
    """4 s in 100 ms buckets: 2 s in `one`, then 2 s in `two`, one thread, 10 per bucket."""
    def frames(phase: str) -> tuple[Frame, ...]:
        return (Frame("main"), Frame(phase), Frame("burn"),
                Frame("do_syscall_64", FrameKind.KERNEL))
    samples = [
        StackSample(frames=frames("one" if b < 20 else "two"), weight=10, count=10, pid=7,
                    tid=7, cpu=b % 2, comm="phases", thread="phases",
                    time_ns=START + b * RES, span_ns=RES)
        for b in range(40)
    ]
    return Profile(samples, sources=["phases.bee"], frequency_hz=99, start_time_ns=START,
                   duration_ns=4 * 10**9, end_time_ns=START + 4 * 10**9)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("timeline") / "timeline.html"
    path.write_text(render(_profile(), TimelineOptions()), encoding="utf-8")
    return path


def names(cdp: DevTools) -> set[str]:
    return set(cdp.eval("[...document.querySelectorAll('#frames > g.f')]"
                        ".map(g => g.getAttribute('data-n'))"))


def drag(cdp: DevTools, b0: int, b1: int) -> None:
    """Press on bucket b0's cell, move to b1's, release: as a user would."""
    x0, y0 = cdp.eval(f"timeline.cell({b0})")
    x1, y1 = cdp.eval(f"timeline.cell({b1})")
    press = {"button": "left", "clickCount": 1}
    cdp.call("Input.dispatchMouseEvent", type="mouseMoved", x=x0, y=y0)
    cdp.call("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0, **press)
    cdp.call("Input.dispatchMouseEvent", type="mouseMoved", x=(x0 + x1) / 2, y=y1,
             button="left", buttons=1)
    cdp.call("Input.dispatchMouseEvent", type="mouseMoved", x=x1, y=y1, button="left",
             buttons=1)
    cdp.call("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1, **press)


def test_drag_a_range_and_the_flame_graph_follows(chromium: DevTools,  # noqa: F811
                                                  page: Path) -> None:
    cdp = chromium
    # GIVEN the timeline of a program 2 s in `one`, then 2 s in `two`
    cdp.load(page.as_uri())
    # THEN it opens on the whole recording: both phases, 400 samples
    assert {"one", "two", "burn", "main"} <= names(cdp)
    assert cdp.eval("bee.total") == 400
    assert "Whole recording" in cdp.eval("document.getElementById('range').textContent")
    # WHEN the user drags over 0.3 s .. 1.3 s (buckets 3 to 12)
    drag(cdp, 3, 12)
    # THEN the flame graph holds only `one`, 10 buckets of 10 samples
    assert "two" not in names(cdp) and "one" in names(cdp)
    assert cdp.eval("bee.total") == 100
    # AND the range is shown as options to paste into bee report
    assert cdp.eval("document.getElementById('cli').textContent") == "--from 0.3 --to 1.3"
    assert "2025-11-30T12:00:00.300Z to 2025-11-30T12:00:01.300Z" in cdp.eval(
        "document.getElementById('range').textContent")
    # WHEN the user drags backwards over the second phase (3.5 s back to 2.5 s)
    drag(cdp, 35, 25)
    # THEN only `two` is left
    assert "one" not in names(cdp) and "two" in names(cdp)
    assert cdp.eval("document.getElementById('cli').textContent") == "--from 2.5 --to 3.6"
    # AND the flame graph still zooms on click (flamegraph.js, shared with the SVG)
    cdp.result(cdp.click(*center(cdp, f"{frame_js('burn')}.children[1]")))
    assert abs(width_of(cdp, "burn") - FULL) < 0.1
    shot = cdp.call("Page.captureScreenshot", format="png")
    (artifacts() / "timeline.png").write_bytes(base64.b64decode(shot["data"]))


def test_thread_and_cpu_rows(chromium: DevTools, page: Path) -> None:  # noqa: F811
    cdp = chromium
    cdp.load(page.as_uri())
    # WHEN the rows are one per CPU and the user drags over both CPUs' first two seconds
    cdp.eval("(() => { const v = document.getElementById('view'); v.value = 'cpu';"
             " v.dispatchEvent(new Event('change')); })()")
    cdp.eval("timeline.select(0, 19)")
    # THEN the options name the CPUs too, and the flame graph holds that range
    assert cdp.eval("timeline.cli()") == "--from 0 --to 2 --cpu 0 --cpu 1"
    assert names(cdp) >= {"one"} and "two" not in names(cdp)


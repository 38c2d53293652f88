"""The timeline's embedded data (per-stack ids, sparse delta-coded buckets) and its CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bee_contract.errors import ReportError
from bee_report.profile import Frame, Profile, StackSample
from bee_report.reporters.timeline import TimelineOptions, data, render
from formats.make_sample import SAMPLE, SAMPLE_V1

START = 1_764_504_000_000_000_000
RES = 100_000_000


def _sample(phase: str, bucket: int, weight: int, tid: int = 7, cpu: int = 0) -> StackSample:
    return StackSample(frames=(Frame("main"), Frame(phase)), weight=weight, count=weight,
                       pid=7, tid=tid, cpu=cpu, comm="app", thread="app",
                       time_ns=START + bucket * RES, span_ns=RES)


def _profile(*samples: StackSample, seconds: int = 2) -> Profile:
    return Profile(list(samples), start_time_ns=START, duration_ns=seconds * 10**9,
                   end_time_ns=START + seconds * 10**9)


def _decode(model: dict[str, Any]) -> dict[tuple[tuple[str, ...], int, int], dict[int, int]]:
    """Series back to {(frame labels, thread, cpu): {bucket: weight}}."""
    out = {}
    for i, sid in enumerate(model["ss"]):
        labels = tuple(model["frames"][f][0] for f in model["stacks"][sid])
        cells, b = {}, 0
        for j in range(model["off"][i], model["off"][i + 1]):
            b += model["b"][j]
            cells[b] = model["w"][j]
        out[(labels, model["threads"][model["st"][i]][1], model["sc"][i])] = cells
    return out


def test_series_hold_each_stack_thread_and_cpu_with_sparse_buckets() -> None:
    # GIVEN samples of two stacks in a few buckets (one bucket twice: summed)
    profile = _profile(_sample("one", 3, 5), _sample("one", 3, 2), _sample("one", 17, 4),
                       _sample("two", 12, 9, cpu=1))
    # WHEN turned into the page's model
    model = data(profile, TimelineOptions())
    # THEN every series decodes back to its buckets, frames are shared, nothing else is kept
    assert _decode(model) == {
        (("app", "main", "one"), 7, 0): {3: 7, 17: 4},
        (("app", "main", "two"), 7, 1): {12: 9},
    }
    assert [f[0] for f in model["frames"]] == ["all", "app", "main", "one", "two"]
    assert (model["n"], model["first"], model["res_ns"]) == (20, 0, RES)


def test_a_window_crops_the_timeline() -> None:
    profile = _profile(_sample("one", 3, 5), _sample("two", 12, 9))
    profile.window = (START + 10 * RES, START + 15 * RES)
    model = data(profile, TimelineOptions())
    assert (model["first"], model["n"]) == (10, 5)
    assert _decode(model) == {(("app", "main", "two"), 7, 0): {2: 9}}


def test_untimed_recordings_are_refused() -> None:
    # GIVEN a profile whose only recording is format v1 (one bucket spanning 2 s)
    untimed = StackSample(frames=(Frame("main"),), weight=1, count=1, pid=1, tid=1, cpu=0,
                          comm="a", thread="a", time_ns=START, span_ns=2 * 10**9)
    profile = _profile(untimed)
    profile.untimed = {"old.bee": (START, 2 * 10**9)}
    # THEN the timeline is refused in one line
    with pytest.raises(ReportError, match="no time buckets"):
        data(profile, TimelineOptions())
    # AND next to a timed recording, it is left out
    profile.samples.append(_sample("one", 4, 3))
    assert _decode(data(profile, TimelineOptions())) == {(("app", "main", "one"), 7, 0): {4: 3}}


def test_the_page_is_self_contained() -> None:
    page = render(_profile(_sample("</script><b>x", 1, 1)), TimelineOptions())
    # no URL is loaded: no src/href attributes, a CSP that forbids any fetch
    assert "src=" not in page and "href=" not in page and "default-src 'none'" in page
    # the data cannot close its script element, and decodes to the hostile name
    payload = page.split('id="bee-data">', 1)[1].split("</script>", 1)[0]
    assert "</" not in payload
    assert json.loads(payload)["frames"][3][0] == "</script><b>x"


def test_cli_writes_a_timeline_and_refuses_v1(cli: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "t.html"
    result = cli("report", SAMPLE, "-f", "timeline", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    result = cli("report", SAMPLE_V1, "-f", "timeline", "-o", tmp_path / "v1.html")
    assert result.exit_code != 0
    assert result.stderr.splitlines()[-1].startswith("bee: no time buckets")

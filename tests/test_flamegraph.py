"""Flame graph renderers: the built-in SVG (layout, tooltips, colours, escaping, diffs,
golden file) and the inferno wrapper (with a stand-in inferno, and the real one if
installed)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import stat
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bee_contract.errors import ReportError
from bee_report.reporters import inferno, svg_builtin
from bee_report.reporters.flamegraph import parse_folded, render_diff_svg, render_svg
from bee_report.reporters.options import FlameOptions
from tests.golden import golden

NS = "{http://www.w3.org/2000/svg}"
FIXTURES = Path(__file__).parent / "fixtures" / "flamegraph"
BUILTIN = FlameOptions(renderer="builtin")
PLOT = BUILTIN.width - 2 * svg_builtin.XPAD

SMALL: list[tuple[tuple[str, ...], int]] = [
    (("app", "main", "parse", "lex"), 30),
    (("app", "main", "parse", "parse_expr", "parse"), 20),
    (("app", "main", "run", "parse"), 7),
    (("app", "main", "run", "compute"), 40),
    (("app", "main", "do_syscall_64_[k]"), 3),
    (("app", "main"), 13),
]  # 113 samples; "^parse$" covers 30 + 20 + 7 = 57 (the nested parse counted once)


@dataclass(frozen=True)
class Drawn:
    """One frame as parsed back from the SVG."""

    name: str
    offset: int
    value: int
    title: str
    x: float
    y: float
    width: float
    fill: str
    label: str


def parse(svg: str) -> tuple[ET.Element, list[Drawn]]:
    """The SVG root (parsing proves well-formed XML) and its frames in document order."""
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    drawn = []
    for g in root.iter(f"{NS}g"):
        if g.get("class") != "f":
            continue
        title, rect, label = list(g)
        drawn.append(
            Drawn(
                name=g.get("data-n", ""),
                offset=int(g.get("data-o", "")),
                value=int(g.get("data-v", "")),
                title=title.text or "",
                x=float(rect.get("x", "")),
                y=float(rect.get("y", "")),
                width=float(rect.get("width", "")),
                fill=rect.get("fill", ""),
                label=label.text or "",
            )
        )
    return root, drawn


def paths(drawn: list[Drawn], inverted: bool = False) -> dict[tuple[str, ...], int]:
    """Rebuild each frame's path from the depth-first order and y, mapped to its count."""
    ys = sorted({d.y for d in drawn}, reverse=not inverted)  # depth 0 first
    depth_of = {y: i for i, y in enumerate(ys)}
    out: dict[tuple[str, ...], int] = {}
    stack: list[str] = []
    for d in drawn:
        depth = depth_of[d.y]
        del stack[depth:]
        stack.append(d.name)
        out[tuple(stack[1:])] = d.value
    return out


def inclusive(
    rows: Sequence[tuple[Sequence[str], int]], reverse: bool = False
) -> Counter[tuple[str, ...]]:
    """Brute force: every prefix of every stack with its summed count."""
    out: Counter[tuple[str, ...]] = Counter()
    for frames, count in rows:
        seq = tuple(reversed(frames)) if reverse else tuple(frames)
        for i in range(len(seq) + 1):
            out[seq[:i]] += count
    return out


def rgb(fill: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"rgb\((\d+),(\d+),(\d+)\)", fill)
    assert m, fill
    r, g, b = (int(v) for v in m.groups())
    return r, g, b


def by_name(drawn: list[Drawn], name: str) -> list[Drawn]:
    return [d for d in drawn if d.name == name]


# --- built-in layout --------------------------------------------------------------------


def test_svg_is_valid_and_widths_are_proportional_to_counts() -> None:
    root, drawn = parse(render_svg(SMALL, BUILTIN))
    assert root.get("width") == "1200"
    total = 113
    assert drawn[0].name == "all" and drawn[0].value == total
    for d in drawn:
        assert abs(d.width - d.value * PLOT / total) < 1.0, d
        assert abs(d.x - (svg_builtin.XPAD + d.offset * PLOT / total)) < 1.0, d
    assert abs(by_name(drawn, "compute")[0].width - 40 * PLOT / total) < 0.1


def test_counts_match_brute_force_on_random_stacks() -> None:
    rnd = random.Random(7)
    names = ["a", "b", "c", "d_[k]", "e_[j]", "f_[i]"]
    rows = [
        (tuple(rnd.choice(names) for _ in range(rnd.randint(0, 6))), rnd.randint(1, 9))
        for _ in range(300)
    ]
    for reverse in (False, True):
        opts = replace(BUILTIN, minwidth=0.0, reverse=reverse)
        _, drawn = parse(render_svg(rows, opts))
        expected = {
            tuple(n.removesuffix(n[-4:]) if n[-4:-2] == "_[" else n for n in path): count
            for path, count in inclusive(rows, reverse).items()
        }
        assert paths(drawn) == expected


def test_titles_carry_counts_percentages_and_kinds() -> None:
    _, drawn = parse(render_svg(SMALL, BUILTIN))
    assert drawn[0].title == "all (113 samples, 100%)"
    assert by_name(drawn, "compute")[0].title == "compute (40 samples, 35.40%)"
    kernel = by_name(drawn, "do_syscall_64")[0]  # suffix stripped from label and name
    assert kernel.title == "do_syscall_64 [kernel] (3 samples, 2.65%)"
    big = parse(render_svg([(("p", "f"), 1234567)], replace(BUILTIN, count_name="ns")))[1]
    assert by_name(big, "f")[0].title == "f (1,234,567 ns, 100.00%)"


def test_labels_are_truncated_to_fit() -> None:
    long = "x" * 300
    _, drawn = parse(render_svg([(("p", long), 10), (("p", "tiny"), 1)], BUILTIN))
    frame = by_name(drawn, long)[0]
    assert frame.label.endswith("..") and len(frame.label) < len(long)
    assert len(frame.label) * svg_builtin.FONT_SIZE * svg_builtin.FONT_WIDTH <= frame.width
    _, narrow = parse(render_svg([(("p", "abcdefgh"), 1), (("p", "z"), 999)], BUILTIN))
    assert by_name(narrow, "abcdefgh")[0].label == ""  # 1.2 px: no room for text


def test_hostile_names_are_escaped() -> None:
    hostile = [
        '<script>alert("x")</script>',
        "a & b ]]> c",
        "\"double\" 'single'",
        "tab\there\nnewline\rcr",
        "ctl\x01\x1f\ufffe\udcff",
        "</g></svg>",
    ]
    rows = [(("p", name), 10) for name in hostile]
    opts = replace(BUILTIN, title="<b>T&amp;</b>", subtitle='"s"', count_name="<n>")
    svg = render_svg(rows, opts)
    root, drawn = parse(svg)
    assert len(list(root.iter(f"{NS}script"))) == 1
    names = {d.name for d in drawn}
    for name in hostile[:4]:
        assert name in names
        assert by_name(drawn, name)[0].title.startswith(name)
    assert "ctl\ufffd\ufffd\ufffd\ufffd" in names  # XML-forbidden characters replaced
    assert "</g></svg>" in names
    texts = {t.get("id"): t.text for t in root.iter(f"{NS}text")}
    assert texts["title"] == "<b>T&amp;</b>" and texts["subtitle"] == '"s"'
    assert any(d.title.endswith("<n>, 16.67%)") for d in drawn)


def test_output_is_deterministic() -> None:
    a = render_svg(SMALL, BUILTIN)
    assert a == render_svg(list(SMALL), BUILTIN)
    assert a == render_svg(reversed(SMALL), BUILTIN)  # input order does not matter
    split = [*SMALL, (("app", "main", "run", "compute"), 0)]
    merged = [(f, c) for f, c in SMALL if f[-1] != "compute"]
    merged += [(("app", "main", "run", "compute"), 25), (("app", "main", "run", "compute"), 15)]
    assert a == render_svg(split, BUILTIN) == render_svg(merged, BUILTIN)


def test_children_sorted_by_name_from_parent_left_edge() -> None:
    _, drawn = parse(render_svg(SMALL, BUILTIN))
    main = by_name(drawn, "main")[0]
    kids = [d for d in drawn if d.y == main.y - svg_builtin.FRAME_HEIGHT]
    assert [k.name for k in kids] == ["do_syscall_64", "parse", "run"]
    assert kids[0].offset == main.offset
    assert [k.offset for k in kids] == [0, 3, 53]


def test_bee_palette_colours_by_kind() -> None:
    rows = [
        (("proc", "user_fn", "jit_fn_[j]", "inl_fn_[i]", "sys_fn_[k]"), 10),
        (("proc", "other_user"), 10),
        (("proc", "other_sys_[k]"), 10),
    ]
    _, drawn = parse(render_svg(rows, BUILTIN))
    fill = {d.name: rgb(d.fill) for d in drawn}
    kernel, user = fill["sys_fn"], fill["user_fn"]
    assert kernel != user
    for r, g, _ in (fill["sys_fn"], fill["other_sys"]):  # orange
        assert r >= 235 and 150 <= g <= 195
    for r, g, _ in (fill["user_fn"], fill["other_user"]):  # red
        assert r >= 205 and g <= 105
    r, g, b = fill["jit_fn"]
    assert g > r and g > b  # green
    r, g, b = fill["inl_fn"]
    assert b > r and g > r  # aqua
    r, g, b = fill["proc"]
    assert b > r and b > g  # lavender root
    assert len(set(fill.values())) == len(fill)
    again = parse(render_svg([(("x", "user_fn"), 5)], BUILTIN))[1]
    assert rgb(by_name(again, "user_fn")[0].fill) == user  # same name, same colour


def test_grouping_roots_and_process_name_are_root_kind() -> None:
    rows = [(("cpu_3", "pid_42", "python", "main", "cpu_7"), 5), (("bash", "pid_9"), 5)]
    for reverse in (False, True):
        _, drawn = parse(render_svg(rows, replace(BUILTIN, reverse=reverse)))
        lavender = {d.name for d in drawn if rgb(d.fill)[2] >= 215}
        assert lavender == {"cpu_3", "pid_42", "python", "bash"}


@pytest.mark.parametrize("colors", ["hot", "mem", "io", "java"])
def test_flamegraph_pl_palettes(colors: str) -> None:
    _, drawn = parse(render_svg(SMALL, replace(BUILTIN, colors=colors)))
    fills = [rgb(d.fill) for d in drawn]
    assert all(0 <= c <= 255 for f in fills for c in f)
    assert len(set(fills)) > 2


def test_minwidth_elides_narrow_frames_into_parent() -> None:
    rows = [(("p", "big"), 99_999), (("p", "small", "deeper"), 1)]
    _, drawn = parse(render_svg(rows, BUILTIN))
    assert not by_name(drawn, "small") and not by_name(drawn, "deeper")
    assert by_name(drawn, "p")[0].value == 100_000  # the elided sample still counts
    assert abs(by_name(drawn, "p")[0].width - PLOT) < 0.1
    _, kept = parse(render_svg(rows, replace(BUILTIN, minwidth=0.0)))
    assert by_name(kept, "small") and by_name(kept, "deeper")
    _, wide = parse(render_svg(rows, replace(BUILTIN, minwidth=50.0)))
    assert [d.name for d in wide] == ["all", "p", "big"]


def test_reverse_puts_leaves_at_the_bottom() -> None:
    _, drawn = parse(render_svg(SMALL, replace(BUILTIN, reverse=True)))
    found = paths(drawn)
    assert found[("lex",)] == 30 and found[("parse",)] == 27 and found[("compute",)] == 40
    assert found[("parse", "parse_expr", "parse", "main", "app")] == 20
    assert found[("main", "app")] == 13


def test_inverted_draws_root_at_the_top() -> None:
    root, drawn = parse(render_svg(SMALL, replace(BUILTIN, inverted=True)))
    ys = [d.y for d in drawn]
    assert drawn[0].y == min(ys)
    assert by_name(drawn, "lex")[0].y == drawn[0].y + 4 * svg_builtin.FRAME_HEIGHT
    assert paths(drawn, inverted=True)[("app", "main", "parse", "lex")] == 30
    title = next(t for t in root.iter(f"{NS}text") if t.get("id") == "title")
    assert title.text == "Icicle Graph"


def test_diff_colours_grown_red_shrunk_blue() -> None:
    rows = [
        (("p", "grew"), 10, 40),
        (("p", "shrank"), 40, 10),
        (("p", "same"), 50, 50),
    ]
    _, drawn = parse(render_diff_svg(rows, BUILTIN))
    grew, shrank, same = (by_name(drawn, n)[0] for n in ("grew", "shrank", "same"))
    r, g, b = rgb(grew.fill)
    assert r == 255 and g == b < 255
    r, g, b = rgb(shrank.fill)
    assert b == 255 and r == g < 255
    assert rgb(same.fill) == (250, 250, 250)
    assert grew.value == 40  # width by the new counts
    assert abs(grew.width - 40 * PLOT / 100) < 1.0
    assert grew.title == "grew (base 10, new 40 samples; 10.00% -> 40.00%, +30.00%)"
    assert shrank.title.endswith("-30.00%)")


def test_diff_intensity_follows_share_change_not_raw_counts() -> None:
    # base is 10x bigger: equal shares are "unchanged" even though raw counts differ
    rows = [(("p", "a"), 100, 10), (("p", "b"), 300, 20), (("p", "c"), 600, 70)]
    _, drawn = parse(render_diff_svg(rows, BUILTIN))
    a, b, c = (rgb(by_name(drawn, n)[0].fill) for n in "abc")
    assert a == (250, 250, 250)
    assert b[2] == 255 and c[0] == 255  # b: 30% -> 20% shrank; c: 60% -> 70% grew
    assert b[0] == c[1]  # equal |change|, equal intensity


@pytest.mark.parametrize("diff", [False, True])
def test_empty_input_says_no_samples(diff: bool) -> None:
    for rows in ([], [(("p", "f"), 0)]):
        svg = (
            render_diff_svg([(f, c, c) for f, c in rows], BUILTIN)
            if diff
            else render_svg(rows, BUILTIN)
        )
        root, drawn = parse(svg)
        assert not drawn
        assert "No samples" in [t.text for t in root.iter(f"{NS}text")]


def test_bad_options_and_counts_raise_report_error() -> None:
    with pytest.raises(ReportError, match="palette"):
        render_svg(SMALL, replace(BUILTIN, colors="rainbow"))
    with pytest.raises(ReportError, match="renderer"):
        render_svg(SMALL, replace(BUILTIN, renderer="gnuplot"))
    with pytest.raises(ReportError, match="width"):
        render_svg(SMALL, replace(BUILTIN, width=20))
    with pytest.raises(ReportError, match="negative"):
        render_svg([(("p",), -1)], BUILTIN)


def test_parse_folded() -> None:
    text = "a;b;c 5\n\nfoo bar;baz 7\nsolo 1\n"
    assert parse_folded(text) == [(("a", "b", "c"), 5), (("foo bar", "baz"), 7), (("solo",), 1)]
    with pytest.raises(ReportError, match=r"x\.folded:2"):
        parse_folded("a 1\na;b\n", "x.folded")


def test_big_input_renders_quickly() -> None:
    rnd = random.Random(3)
    names = [f"fn_{i}" for i in range(2000)] + [f"k_{i}_[k]" for i in range(300)]
    rows = [
        (("proc", *(names[min(int(rnd.expovariate(0.01)), 2299)] for _ in range(20))), 1 + i % 50)
        for i in range(100_000)
    ]
    start = time.perf_counter()
    svg = render_svg(rows, BUILTIN)
    assert time.perf_counter() - start < 10.0
    _, drawn = parse(svg)
    assert drawn[0].value == sum(c for _, c in rows)
    assert all(d.width >= BUILTIN.minwidth - 0.05 for d in drawn)


# --- golden file ------------------------------------------------------------------------


def test_golden_small_svg() -> None:
    """The whole SVG for a small input; set BEE_REGEN_GOLDEN=1 to rewrite it on purpose."""
    folded = (FIXTURES / "small.folded").read_text(encoding="utf-8")
    svg = render_svg(parse_folded(folded, "small.folded"), BUILTIN)
    golden(FIXTURES / "small.svg", svg)


# --- inferno ----------------------------------------------------------------------------

FAKE = """#!{python}
import json, os, sys
log = os.environ["FAKE_INFERNO_LOG"]
entry = {{"argv": sys.argv, "stdin": sys.stdin.read()}}
for path in sys.argv[1:]:
    if os.path.isfile(path):
        entry.setdefault("files", []).append(open(path).read())
with open(log, "a") as f:
    f.write(json.dumps(entry) + "\\n")
if os.environ.get("FAKE_INFERNO_FAIL"):
    sys.stderr.write("WARN something\\nError: invalid line 3\\n")
    sys.exit(2)
if os.path.basename(sys.argv[0]) == "inferno-diff-folded":
    sys.stdout.write("a;b 1 2\\n")
else:
    sys.stdout.write('<svg xmlns="http://www.w3.org/2000/svg"><text>fake</text></svg>')
"""


@pytest.fixture
def no_inferno(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def fake_inferno(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in inferno tools first on PATH; returns the log of their calls (JSON lines)."""
    bindir = tmp_path / "fake-bin"
    bindir.mkdir()
    for tool in (inferno.FLAMEGRAPH, inferno.DIFF_FOLDED):
        path = bindir / tool
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_INFERNO_LOG", str(log))
    return log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_inferno_renderer_without_inferno_raises(no_inferno: None) -> None:
    with pytest.raises(ReportError, match=r"cargo install inferno.*--renderer builtin"):
        render_svg(SMALL, replace(BUILTIN, renderer="inferno"))
    with pytest.raises(ReportError, match="cargo install inferno"):
        render_diff_svg([(("p",), 1, 1)], replace(BUILTIN, renderer="inferno"))
    # "auto" falls back to the built-in renderer
    assert render_svg(SMALL, replace(BUILTIN, renderer="auto")) == render_svg(SMALL, BUILTIN)


def test_inferno_gets_fixed_args_and_folded_stdin(fake_inferno: Path) -> None:
    opts = FlameOptions(
        title="-T",
        subtitle="sub",
        width=1000,
        minwidth=0.49,
        reverse=True,
        inverted=True,
        count_name="ns",
        renderer="auto",
    )
    rows = [(("p", "a;b", "c_[k]"), 3), (("p",), 0), ((), 4), (("p", "x\ny"), 2)]
    assert "fake" in render_svg(rows, opts)
    (call,) = calls(fake_inferno)
    assert call["argv"][1:] == [
        "--title=-T",
        "--colors=java",
        "--hash",
        "--width=1000",
        "--minwidth=0.05",
        "--countname=ns",
        "--subtitle=sub",
        "--reverse",
        "--inverted",
    ]
    assert call["stdin"] == "p;a:b;c_[k] 3\np;x y 2\n"


def test_inferno_diff_pipes_diff_folded_into_flamegraph(fake_inferno: Path) -> None:
    rows = [(("p", "a"), 5, 0), (("p", "b"), 0, 7)]
    render_diff_svg(rows, replace(BUILTIN, renderer="inferno", colors="mem"))
    diff_call, flame_call = calls(fake_inferno)
    assert Path(str(diff_call["argv"][0])).name == "inferno-diff-folded"
    assert diff_call["argv"][1] == "--normalize"
    assert diff_call["files"] == ["p;a 5\n", "p;b 7\n"]
    assert flame_call["stdin"] == "a;b 1 2\n"
    assert "--colors=mem" in flame_call["argv"]


def test_inferno_failure_reports_last_stderr_line(
    fake_inferno: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_INFERNO_FAIL", "1")
    with pytest.raises(ReportError, match=r"^inferno-flamegraph failed: Error: invalid line 3$"):
        render_svg(SMALL, replace(BUILTIN, renderer="inferno"))


def test_inferno_empty_input_gives_no_samples_svg(fake_inferno: Path) -> None:
    svg = render_svg([], replace(BUILTIN, renderer="inferno"))
    assert "No samples" in svg and not fake_inferno.exists()


def test_real_inferno() -> None:
    if shutil.which("inferno-flamegraph") is None:
        pytest.skip("inferno-flamegraph not installed (cargo install inferno)")
    opts = replace(BUILTIN, renderer="inferno", title="real inferno")
    root = ET.fromstring(render_svg(SMALL, opts))
    assert root.tag == f"{NS}svg"
    titles = [t.text or "" for t in root.iter(f"{NS}title")]
    assert any(t.startswith("compute (40 samples") for t in titles)
    assert any(t.startswith("do_syscall_64 (3 samples") for t in titles)
    if shutil.which("inferno-diff-folded") is not None:
        diff = render_diff_svg([(f, c, c * 2 if "run" in f else c) for f, c in SMALL], opts)
        assert ET.fromstring(diff).tag == f"{NS}svg"

"""`bee diff`: differential folded stacks, flame graphs, and the top table's statistics."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from bee_contract.errors import ReportError
from bee_report import stats
from bee_report.profile import Frame, FrameKind, Profile, StackSample
from bee_report.reporters import diff
from bee_report.reporters.options import FlameOptions


def _sample(*names: str, weight: int, count: int | None = None, comm: str = "app",
            kernel: tuple[str, ...] = (), module: str = "app") -> StackSample:
    frames = tuple(Frame(n, FrameKind.USER, module) for n in names) + tuple(
        Frame(n, FrameKind.KERNEL, "[kernel.kallsyms]") for n in kernel)
    return StackSample(frames=frames, weight=weight, count=weight if count is None else count,
                       pid=1, tid=1, cpu=0, comm=comm, thread=comm)


def _profile(*samples: StackSample, unit: str = "samples") -> Profile:
    return Profile(list(samples), unit=unit)


def _shares(leaves: dict[str, int]) -> Profile:
    """A profile with one `main;<leaf>` stack per leaf and that many samples."""
    return _profile(*(_sample("main", leaf, weight=n) for leaf, n in leaves.items()))


def _row(rows: list[diff.DiffRow], name: str) -> diff.DiffRow:
    return next(r for r in rows if r.name == name)


# --- statistics -----------------------------------------------------------------------


def test_two_proportion_z_matches_a_hand_computation() -> None:
    # GIVEN 100 of 1000 events against 150 of 1000, computed by hand:
    # pooled p = 250/2000 = 0.125, se = sqrt(0.125 * 0.875 * (1/1000 + 1/1000))
    se = math.sqrt(0.125 * 0.875 * 0.002)
    z_hand = (0.100 - 0.150) / se
    p_hand = 2.0 * (1.0 - 0.5 * (1.0 + math.erf(abs(z_hand) / math.sqrt(2.0))))
    # WHEN the test is run
    z, p = stats.two_proportion_z(100, 1000, 150, 1000)
    # THEN z and p agree with the hand computation and the published values
    assert z == pytest.approx(z_hand, abs=1e-9)
    assert p == pytest.approx(p_hand, abs=1e-9)
    assert z == pytest.approx(-3.38, abs=1e-2)
    assert p == pytest.approx(0.00073, abs=1e-3)
    assert p == pytest.approx(0.000723, abs=1e-5)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"),
                         [(0, 100, 0, 100), (100, 100, 50, 50), (0, 0, 5, 10), (3, 10, 0, 0)])
def test_undefined_z_tests_give_no_evidence(x1: int, n1: int, x2: int, n2: int) -> None:
    # GIVEN counts where the pooled test is undefined (empty side, or p = 0 or 1)
    # THEN the result says "no difference" instead of dividing by zero
    assert stats.two_proportion_z(x1, n1, x2, n2) == (0.0, 1.0)


def test_corrections_match_r_p_adjust() -> None:
    # GIVEN p-values (unsorted) whose adjustments R's p.adjust gives as
    # BH:   0.05 0.05 0.05 0.05 0.05    holm: 0.05 0.08 0.09 0.09 0.09
    p = [0.03, 0.01, 0.05, 0.02, 0.04]
    # THEN both corrections agree with R, in the input order
    assert stats.adjust(p, "bh") == pytest.approx([0.05] * 5)
    assert stats.adjust(p, "holm") == pytest.approx([0.09, 0.05, 0.09, 0.08, 0.09])
    assert stats.adjust([0.001, 0.5, 0.9], "bh") == pytest.approx([0.003, 0.75, 0.9])
    with pytest.raises(ValueError, match="correction"):
        stats.adjust(p, "bonferroni")


# --- folded ---------------------------------------------------------------------------


def test_folded_diff_matches_difffolded_format() -> None:
    # GIVEN two profiles sharing one stack, each with a stack of its own
    base = _profile(_sample("main", "a", weight=3), _sample("main", "b", weight=2),
                    _sample("main", "a", weight=1, kernel=("sys_read",)))
    new = _profile(_sample("main", "a", weight=1), _sample("main", "c", weight=4),
                   _sample("main", "a", weight=2, kernel=("sys_read",)))
    # WHEN diffed
    text = diff.render_folded(base, new)
    # THEN every stack of either side is one sorted `stack base new` line, 0 where absent
    assert text == (
        "app;main;a 3 1\n"
        "app;main;a;sys_read_[k] 1 2\n"
        "app;main;b 2 0\n"
        "app;main;c 0 4\n"
    )


def test_normalize_scales_base_to_the_new_total_truncating() -> None:
    # GIVEN a base of 4 samples and a new profile of 10
    base = _profile(_sample("main", "a", weight=3), _sample("main", "b", weight=1))
    new = _profile(_sample("main", "a", weight=4), _sample("main", "b", weight=6))
    # WHEN diffed with normalize (difffolded -n: int(base * 10 / 4))
    text = diff.render_folded(base, new, normalize=True)
    # THEN base counts are 7 (7.5) and 2 (2.5); without it they are raw
    assert text == "app;main;a 7 4\napp;main;b 2 6\n"
    assert diff.render_folded(base, new) == "app;main;a 3 4\napp;main;b 1 6\n"


def test_normalize_with_an_empty_base_leaves_counts_alone() -> None:
    new = _profile(_sample("main", weight=5))
    assert diff.render_folded(_profile(), new, normalize=True) == "app;main 0 5\n"


def test_ignore_comm_matches_stacks_across_process_names() -> None:
    # GIVEN the same stack under different process names on two hosts
    base = _profile(_sample("main", "work", weight=5, comm="server-old"))
    new = _profile(_sample("main", "work", weight=7, comm="server"))
    # WHEN diffed with and without the process name
    # THEN ignore_comm matches them; by default they are two unrelated stacks
    assert diff.render_folded(base, new, ignore_comm=True) == "main;work 5 7\n"
    assert diff.render_folded(base, new) == "server;main;work 0 7\nserver-old;main;work 5 0\n"


def test_strip_hex_matches_unknown_frames_across_builds() -> None:
    base = _profile(_sample("main", "libx.so+0x1a2b", weight=2))
    new = _profile(_sample("main", "libx.so+0x1c00", weight=3))
    assert diff.render_folded(base, new, strip_hex=True) == "app;main;libx.so+0x... 2 3\n"


def test_disjoint_recordings() -> None:
    # GIVEN recordings with no stack in common
    base = _shares({"old_path": 600, "setup": 400})
    new = _shares({"new_path": 1000})
    # WHEN diffed
    text = diff.render_folded(base, new)
    rows = diff.diff_rows(base, new)
    # THEN each stack appears with 0 on the other side
    assert text == "app;main;new_path 0 1000\napp;main;old_path 600 0\napp;main;setup 400 0\n"
    # AND the functions went to / from nothing, significantly
    assert _row(rows, "new_path").status == "grew"
    assert _row(rows, "new_path").base_self_share == 0.0
    assert _row(rows, "old_path").status == "shrank"
    assert _row(rows, "old_path").new_self_share == 0.0
    assert [r.name for r in rows] == ["new_path", "old_path", "setup"]


def test_hostile_names_keep_one_stack_per_line() -> None:
    # GIVEN names with separators, line breaks, spaces, trailing digits and escapes
    hostile = ["a;b", "new\nline", "cr\rret", "sp ace 12", "\x1b[31mred", "ünï", "", "x\u2028y"]
    base = _profile(_sample(*hostile, weight=2, comm="evil;comm\n"))
    new = _profile(_sample(*hostile, weight=3, comm="evil;comm\n"),
                   _sample("ok", weight=1))
    # WHEN diffed as folded text
    text = diff.render_folded(base, new)
    lines = text.split("\n")[:-1]
    # THEN there are exactly two lines, each splitting into 1 + 8 frames and two counts
    assert len(text.splitlines()) == 2 == len(lines)
    assert lines[0] == "app;ok 0 1"
    stack, b, n = lines[1].rsplit(" ", 2)
    assert (b, n) == ("2", "3")
    assert stack.split(";") == ["evil:comm ", "a:b", "new line", "cr ret", "sp ace 12",
                                " [31mred", "ünï", "", "x y"]
    # AND the top table prints one line per function, control characters escaped
    table = diff.render_top(base, new, limit=100, share="total")
    assert "\x1b" not in table and "\r" not in table
    assert "\\x1b[31mred" in table and "new\\nline" in table and "x\\u2028y" in table
    assert len(table.split("\n")) - 1 == 3 + len(diff.diff_rows(base, new, share="total")) == 12


# --- top ------------------------------------------------------------------------------


def test_share_from_10_to_30_percent_is_significant() -> None:
    # GIVEN a function with 10% of 1000 samples, then 30% of 1000
    base = _shares({"hot": 100, "rest": 900})
    new = _shares({"hot": 300, "rest": 700})
    # WHEN diffed
    rows = diff.diff_rows(base, new)
    hot = _row(rows, "hot")
    # THEN it grew, by 20 points, with a tiny p-value; the rest shrank
    assert hot.status == "grew"
    assert hot.base_self_share == pytest.approx(0.10)
    assert hot.new_self_share == pytest.approx(0.30)
    assert hot.self_delta == pytest.approx(20.0)
    assert hot.p_adjusted < 1e-10
    assert _row(rows, "rest").status == "shrank"
    # AND main, never a leaf, is not tested for self share
    assert "main" not in [r.name for r in rows]


def test_half_a_point_on_200_samples_is_noise() -> None:
    # GIVEN 50.0% of 200 samples, then 50.5%
    base = _shares({"f": 100, "g": 100})
    new = _shares({"f": 101, "g": 99})
    # WHEN diffed
    f = _row(diff.diff_rows(base, new), "f")
    # THEN the change is reported but called noise
    assert f.self_delta == pytest.approx(0.5)
    assert f.p_value > 0.5
    assert f.status == "noise"
    assert not f.significant


def test_correction_makes_a_borderline_change_noise_among_many() -> None:
    # GIVEN 100 -> 130 of 1000 (raw p = 0.035) among 20 other functions
    base_leaves = {"target": 100, "rest": 140} | {f"f{i:02}": 40 for i in range(19)}
    new_leaves = {"target": 130, "rest": 110} | {f"f{i:02}": 40 for i in range(19)}
    base, new = _shares(base_leaves), _shares(new_leaves)
    # WHEN diffed without and with corrections
    raw = _row(diff.diff_rows(base, new, correction="none"), "target")
    bh = _row(diff.diff_rows(base, new), "target")  # the default
    holm = _row(diff.diff_rows(base, new, correction="holm"), "target")
    # THEN the raw test calls it, but neither correction does
    assert raw.p_value == pytest.approx(0.0355, abs=1e-3)
    assert raw.status == "grew"
    assert bh.p_value == raw.p_value
    # BH by hand: 21 tests (target, rest, 19 unchanged at p=1); target ranks 1st, rest 2nd
    rest = _row(diff.diff_rows(base, new, correction="none"), "rest").p_value
    assert raw.p_value < rest < 0.05
    assert bh.p_adjusted == pytest.approx(min(raw.p_value * 21 / 1, rest * 21 / 2))
    assert bh.p_adjusted > 0.05 and bh.status == "noise"
    assert holm.p_adjusted > 0.05 and holm.status == "noise"
    # AND a looser alpha lets Benjamini-Hochberg call it again
    assert _row(diff.diff_rows(base, new, alpha=0.9), "target").status == "grew"


def test_off_cpu_tests_event_counts_not_nanoseconds() -> None:
    # GIVEN an off-CPU profile where `io` went from 1s to 9s of 2 events' worth of waiting
    base = _profile(_sample("main", "io", weight=10**9, count=1),
                    _sample("main", "lock", weight=10**9, count=1), unit="nanoseconds")
    new = _profile(_sample("main", "io", weight=9 * 10**9, count=1),
                   _sample("main", "lock", weight=10**9, count=1), unit="nanoseconds")
    # WHEN diffed
    io = _row(diff.diff_rows(base, new), "io")
    # THEN the share shown is by weight, but one event each way proves nothing
    assert io.base_self_share == pytest.approx(0.5)
    assert io.new_self_share == pytest.approx(0.9)
    assert (io.base_self_count, io.new_self_count) == (1, 1)
    assert io.status == "noise"
    # AND the header gives both totals in time
    head = diff.render_top(base, new).splitlines()[0]
    assert "2.00s total from 2 events" in head and "10.00s total from 2 events" in head


def test_weight_and_count_moving_apart_is_not_called() -> None:
    # GIVEN lock waits: fewer events (1000 -> 100) but far more time (10% -> 50%)
    base = _profile(_sample("lock", weight=100, count=1000),
                    _sample("other", weight=900, count=1000), unit="nanoseconds")
    new = _profile(_sample("lock", weight=500, count=100),
                   _sample("other", weight=500, count=1000), unit="nanoseconds")
    # WHEN diffed
    lock = _row(diff.diff_rows(base, new), "lock")
    # THEN the event test is significant, but against the shown change: noise
    assert lock.p_adjusted < 1e-10 and lock.z > 0
    assert lock.self_delta == pytest.approx(40.0)
    assert lock.status == "noise"


def test_total_share_and_sort_order() -> None:
    # GIVEN parse (under main) growing from 20% to 60%, compute shrinking, tiny noise
    base = _profile(_sample("main", "parse", "lex", weight=200),
                    _sample("main", "compute", weight=790), _sample("main", "log", weight=10))
    new = _profile(_sample("main", "parse", "lex", weight=600),
                   _sample("main", "compute", weight=389), _sample("main", "log", weight=11))
    # WHEN diffed by total share
    rows = diff.diff_rows(base, new, share="total")
    # THEN main (always 100%) is noise, significant rows come first by |delta|
    assert [(r.name, r.status) for r in rows] == [
        ("compute", "shrank"), ("lex", "grew"), ("parse", "grew"),
        ("log", "noise"), ("main", "noise")]
    assert _row(rows, "parse").total_delta == pytest.approx(40.0)
    assert _row(rows, "parse").self_delta == 0.0


def test_significant_rows_sort_before_larger_noise() -> None:
    # GIVEN io: +40 points of wait time but one event per side (noise), a: +20 points over
    # thousands of events, b: -60 points
    base = _profile(_sample("io", weight=100, count=1), _sample("a", weight=100, count=1000),
                    _sample("b", weight=800, count=1000), unit="nanoseconds")
    new = _profile(_sample("io", weight=500, count=1), _sample("a", weight=300, count=3000),
                   _sample("b", weight=200, count=1000), unit="nanoseconds")
    # WHEN diffed
    rows = diff.diff_rows(base, new)
    # THEN significant changes come first, each group by absolute change
    assert [(r.name, r.status, round(r.self_delta)) for r in rows] == [
        ("b", "shrank", -60), ("a", "grew", 20), ("io", "noise", 40)]


def test_by_module() -> None:
    base = _profile(_sample("f", weight=50, module="liba.so"),
                    _sample("g", weight=50, module="libb.so"))
    new = _profile(_sample("f", weight=90, module="liba.so"),
                   _sample("g", weight=10, module="libb.so"))
    rows = diff.diff_rows(base, new, by="module")
    assert [(r.name, r.status) for r in rows] == [("liba.so", "grew"), ("libb.so", "shrank")]


def test_top_table_text() -> None:
    # GIVEN a significant change
    base = _shares({"hot": 100, "rest": 900})
    new = _shares({"hot": 300, "rest": 700, "other": 1000})
    # WHEN rendered with a limit of one row
    lines = diff.render_top(base, new, limit=1).splitlines()
    # THEN the header gives both totals, the test, and the column titles; one row follows
    assert lines[0] == "# base: 1000 samples in 2 stacks; new: 2000 samples in 3 stacks"
    assert "Benjamini-Hochberg" in lines[1] and "alpha=0.05" in lines[1]
    assert lines[2].split() == ["SELF%", "BASE", "->", "NEW", "DELTA", "TOTAL%", "BASE",
                                "->", "NEW", "DELTA", "P(ADJ)", "STATUS", "FUNCTION"]
    assert len(lines) == 4
    assert lines[3].split() == ["90.00%", "->", "35.00%", "-55.00", "90.00%", "->",
                                "35.00%", "-55.00", "<0.0001", "shrank", "rest"]


def test_empty_profiles_render() -> None:
    assert diff.render_folded(_profile(), _profile()) == ""
    assert diff.diff_rows(_profile(), _profile()) == []
    assert len(diff.render_top(_profile(), _profile()).splitlines()) == 3


@pytest.mark.parametrize("kwargs", [{"by": "file"}, {"share": "both"}, {"alpha": 0.0},
                                    {"alpha": 1.5}, {"correction": "bonferroni"}])
def test_bad_options_are_report_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ReportError):
        diff.render_top(_profile(), _profile(), **kwargs)  # type: ignore[arg-type]


def test_units_must_match() -> None:
    # GIVEN a CPU profile and an off-CPU one
    # THEN diffing them is refused in every output
    cpu, off = _profile(unit="samples"), _profile(unit="nanoseconds")
    for render in (diff.render_folded, diff.render_top):
        with pytest.raises(ReportError, match="nanoseconds"):
            render(cpu, off)


# --- svg ------------------------------------------------------------------------------


def test_svg_has_red_and_blue_frames() -> None:
    # GIVEN one function that grew and one that shrank, with hostile names around
    base = _profile(_sample("main", "grows", weight=100), _sample("main", "shrinks", weight=900),
                    _sample("main", "<&\"'>", weight=5))
    new = _profile(_sample("main", "grows", weight=700), _sample("main", "shrinks", weight=300),
                   _sample("main", "<&\"'>", weight=5))
    # WHEN drawn as a differential flame graph by the built-in renderer
    svg = diff.render_svg(base, new, FlameOptions(title="Diff", renderer="builtin"))
    # THEN it is well-formed XML with red (grew) and blue (shrank) fills
    ET.fromstring(svg)
    assert re.search(r'fill="rgb\(255,(\d+),\1\)"', svg)
    assert re.search(r'fill="rgb\((\d+),\1,255\)"', svg)

"""Compare two profiles: differential folded stacks, flame graphs and a top table.

Stacks and functions are matched by their symbolized names, never by address or pid,
so recordings from different hosts, runs or builds compare. Three outputs:

* :func:`render_folded`: ``stack base_count new_count`` lines, as ``difffolded.pl`` and
  ``inferno-diff-folded`` write them (but sorted), for any differential flame graph tool.
* :func:`render_svg`: a differential flame graph (widths follow the new profile; red
  grew, blue shrank) drawn by :func:`bee_report.reporters.flamegraph.render_diff_svg`.
* :func:`render_top`: the functions whose share of the profile moved most, each with a
  significance test so that sampling noise is not read as a regression.

The top table's statistics: for each function, its share of the events in base and new
is compared with a pooled two-proportion z-test (:func:`bee_report.stats.two_proportion_z`).
The test uses the *event counts* (``StackSample.count``), while the shares shown are by
*weight*: for CPU profiles both are samples, but for off-CPU or wall-clock profiles the
weight is nanoseconds, which are not independent observations and would make any change
look significant. The p-values of all functions tested (those with a non-zero count in
either profile for the share tested) are adjusted for multiple comparisons, by default
with Benjamini-Hochberg (controls the false discovery rate; ``correction="holm"`` controls
the family-wise error rate instead). A row whose adjusted p-value is below ``alpha`` is
``grew`` or ``shrank`` by the sign of its change in (weight) share, else ``noise``; so is
a row whose event share moved the other way than its weight share (only possible when
weights are durations: the test says nothing about a change in time per event).
Rows are sorted significant first, then by the absolute change of the tested share in
percentage points (largest first), then by name: the effect size decides the order, the
test only decides whether a change is trusted.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace

from bee_contract.errors import ReportError
from bee_contract.text import lines_for_terminal
from bee_report import stats
from bee_report.profile import Profile, StackSample, folded_name, grouped
from bee_report.reporters import folded
from bee_report.reporters.flamegraph import render_diff_svg
from bee_report.reporters.options import Correction, FlameOptions, Share, TopBy
from bee_report.reporters.top import fmt_weight, frame_label

DiffStack = tuple[tuple[str, ...], int, int]
"""One differential folded stack: (root-first frames, base count, new count)."""

_HEX = re.compile(r"0x[0-9a-fA-F]+")


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One function (or module) of the top diff table.

    Weights are in the profiles' unit, counts are events; shares are fractions (0..1) of
    the profile's total weight. ``p_value`` is the raw two-sided p of the tested share
    (``share`` of :func:`diff_rows`), ``p_adjusted`` after the multiple-comparison
    correction, ``status`` one of ``grew``, ``shrank``, ``noise``.
    """

    name: str
    base_self: int
    new_self: int
    base_total: int
    new_total: int
    base_self_count: int
    new_self_count: int
    base_total_count: int
    new_total_count: int
    base_self_share: float
    new_self_share: float
    base_total_share: float
    new_total_share: float
    z: float
    p_value: float
    p_adjusted: float
    status: str

    @property
    def self_delta(self) -> float:
        """Change of the self share, in percentage points."""
        return 100.0 * (self.new_self_share - self.base_self_share)

    @property
    def total_delta(self) -> float:
        """Change of the total (inclusive) share, in percentage points."""
        return 100.0 * (self.new_total_share - self.base_total_share)

    @property
    def significant(self) -> bool:
        """Whether the change survived the test (``status`` is not ``noise``)."""
        return self.status != "noise"


def _check_units(base: Profile, new: Profile) -> None:
    if base.unit != new.unit:
        raise ReportError(
            f"cannot diff a profile weighted in {base.unit} against one weighted in {new.unit}"
        )


def _clean(part: str, strip_hex: bool) -> str:
    """One folded element made safe: no ``;`` and no line breaks (hostile comm/names)."""
    part = folded_name(part)
    return _HEX.sub("0x...", part) if strip_hex else part


def matched_stack(
    sample: StackSample, *, ignore_comm: bool = False, lines: bool = False,
    strip_hex: bool = False,
) -> tuple[str, ...]:
    """The folded frames a sample is matched by, root first.

    As :func:`bee_report.reporters.folded.folded_stack` (process name, then frames with
    their kind suffixes), without the process name when ``ignore_comm``, and with hex
    numbers replaced by ``0x...`` when ``strip_hex`` (difffolded's ``-s``: unknown
    frames are ``module+0xOFFSET``, which moves between builds).
    """
    key = folded.folded_stack(sample, lines)
    if ignore_comm:
        key = key[1:] or ("[unknown]",)
    return tuple(_clean(p, strip_hex) for p in key)


def _fold(
    profile: Profile, ignore_comm: bool, lines: bool, strip_hex: bool
) -> Counter[tuple[str, ...]]:
    out: Counter[tuple[str, ...]] = Counter()
    for s, weight, _ in grouped(profile, lambda s: s.comm):
        out[matched_stack(s, ignore_comm=ignore_comm, lines=lines, strip_hex=strip_hex)] += weight
    return out


def diff_stacks(
    base: Profile, new: Profile, *, normalize: bool = False, ignore_comm: bool = False,
    lines: bool = False, strip_hex: bool = False,
) -> list[DiffStack]:
    """Every stack of either profile with its base and new weight (0 where absent).

    Sorted by stack. With ``normalize`` the base weights are scaled to the new total
    (``int(base * new_total / base_total)``, truncated as difffolded's ``-n`` does) when
    the totals differ. Stacks whose weight is zero on both sides are left out.
    """
    _check_units(base, new)
    b = _fold(base, ignore_comm, lines, strip_hex)
    n = _fold(new, ignore_comm, lines, strip_hex)
    base_total, new_total = sum(b.values()), sum(n.values())
    scale = normalize and base_total != new_total and base_total > 0
    rows: list[DiffStack] = []
    for key in sorted(b.keys() | n.keys()):
        bc, nc = b[key], n[key]
        if bc == 0 and nc == 0:
            continue
        if scale:
            bc = bc * new_total // base_total
        rows.append((key, bc, nc))
    return rows


def render_folded(
    base: Profile, new: Profile, *, normalize: bool = False, ignore_comm: bool = False,
    lines: bool = False, strip_hex: bool = False,
) -> str:
    """The differential folded text: one ``frame;...;frame base new`` line per stack.

    The format of ``difffolded.pl`` / ``inferno-diff-folded`` (which ``flamegraph.pl``
    and ``inferno-flamegraph`` draw as differential flame graphs), sorted by stack.
    Options as :func:`diff_stacks`.
    """
    rows = diff_stacks(base, new, normalize=normalize, ignore_comm=ignore_comm,
                       lines=lines, strip_hex=strip_hex)
    return "".join(f"{';'.join(k)} {bc} {nc}\n" for k, bc, nc in rows)


def render_svg(
    base: Profile, new: Profile, options: FlameOptions, *, ignore_comm: bool = False,
    lines: bool = False, strip_hex: bool = False,
) -> str:
    """A differential flame graph SVG: widths by new weight, red grew, blue shrank.

    Colours compare each frame's share of its profile's total, so no normalization is
    needed. ``options`` as for any flame graph (the caller sets title and count_name).
    """
    rows = diff_stacks(base, new, ignore_comm=ignore_comm, lines=lines, strip_hex=strip_hex)
    return render_diff_svg(rows, options)


@dataclass
class _Tally:
    self_w: Counter[str]
    total_w: Counter[str]
    self_n: Counter[str]
    total_n: Counter[str]
    weight: int = 0
    count: int = 0


def _tally(profile: Profile, by: str, strip_hex: bool) -> _Tally:
    t = _Tally(Counter(), Counter(), Counter(), Counter())
    for s, weight, count in grouped(profile):
        t.weight += weight
        t.count += count
        if not s.frames:
            continue
        labels = [frame_label(f, by) for f in s.frames]
        if strip_hex:
            labels = [_HEX.sub("0x...", name) for name in labels]
        t.self_w[labels[-1]] += weight
        t.self_n[labels[-1]] += count
        for name in set(labels):
            t.total_w[name] += weight
            t.total_n[name] += count
    return t


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _check_options(by: str, share: str, alpha: float, correction: str) -> None:
    if by not in tuple(TopBy):
        raise ReportError(f"unknown --by {by!r} (choose from {', '.join(TopBy)})")
    if share not in tuple(Share):
        raise ReportError(f"unknown share {share!r} (choose from {', '.join(Share)})")
    if not 0.0 < alpha < 1.0:
        raise ReportError(f"alpha must be between 0 and 1, not {alpha}")
    if correction not in tuple(Correction):
        raise ReportError(
            f"unknown correction {correction!r} (choose from {', '.join(Correction)})"
        )


def diff_rows(
    base: Profile, new: Profile, by: str = "function", *, share: str = "self",
    alpha: float = 0.05, correction: str = "bh", strip_hex: bool = False,
) -> list[DiffRow]:
    """One row per function (or module, ``by="module"``) tested, sorted as documented
    in the module docstring.

    ``share`` picks the share tested and sorted by: ``self`` (the function is the leaf)
    or ``total`` (the function is anywhere on the stack). Functions whose count for
    that share is zero in both profiles are not tested and not listed. ``correction``
    is ``bh`` (Benjamini-Hochberg), ``holm`` or ``none``; ``alpha`` the level.
    """
    _check_units(base, new)
    _check_options(by, share, alpha, correction)
    return _rows(_tally(base, by, strip_hex), _tally(new, by, strip_hex), share, alpha,
                 correction)


def _rows(b: _Tally, n: _Tally, share: str, alpha: float, correction: str) -> list[DiffRow]:
    tested_b = b.self_n if share == "self" else b.total_n
    tested_n = n.self_n if share == "self" else n.total_n
    names = sorted(name for name in b.total_n.keys() | n.total_n.keys()
                   if tested_b[name] or tested_n[name])
    tests = [stats.two_proportion_z(tested_b[x], b.count, tested_n[x], n.count) for x in names]
    adjusted = stats.adjust([p for _, p in tests], correction)
    rows = []
    for name, (z, p), p_adj in zip(names, tests, adjusted, strict=True):
        row = DiffRow(
            name=name,
            base_self=b.self_w[name], new_self=n.self_w[name],
            base_total=b.total_w[name], new_total=n.total_w[name],
            base_self_count=b.self_n[name], new_self_count=n.self_n[name],
            base_total_count=b.total_n[name], new_total_count=n.total_n[name],
            base_self_share=_share(b.self_w[name], b.weight),
            new_self_share=_share(n.self_w[name], n.weight),
            base_total_share=_share(b.total_w[name], b.weight),
            new_total_share=_share(n.total_w[name], n.weight),
            z=z, p_value=p, p_adjusted=p_adj, status="noise",
        )
        delta = row.self_delta if share == "self" else row.total_delta
        # z > 0 means the event share fell: call a change only where counts and weights agree
        if p_adj < alpha and delta != 0.0 and (delta > 0) == (z < 0):
            row = replace(row, status="grew" if delta > 0 else "shrank")
        rows.append(row)

    def order(r: DiffRow) -> tuple[bool, float, str]:
        delta = r.self_delta if share == "self" else r.total_delta
        return (not r.significant, -abs(delta), r.name)

    rows.sort(key=order)
    return rows


def _printable(name: str) -> str:
    """A name safe to print on a terminal: control characters escaped."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def _fmt_p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _side(label: str, profile: Profile, weight: int, count: int) -> str:
    unit = profile.unit
    text = f"{fmt_weight(weight, unit)} total" if unit == "nanoseconds" else f"{weight} {unit}"
    if count != weight:
        text += f" from {count} events"
    text += f" in {profile.stack_count} stacks"
    if profile.lost:
        text += f", {profile.lost} lost"
    return f"{label} {text}"


_CORRECTION_NAMES = {"bh": "Benjamini-Hochberg", "holm": "Holm", "none": "no"}


def render_top(
    base: Profile, new: Profile, limit: int = 25, by: str = "function", *,
    share: str = "self", alpha: float = 0.05, correction: str = "bh",
    strip_hex: bool = False,
) -> str:
    """The top diff table as text: two header lines, then at most ``limit`` rows of
    ``diff_rows`` (self and total share base% -> new%, change in percentage points,
    adjusted p-value, status, name). Options as :func:`diff_rows`.
    """
    _check_units(base, new)
    _check_options(by, share, alpha, correction)
    b, n = _tally(base, by, strip_hex), _tally(new, by, strip_hex)
    rows = _rows(b, n, share, alpha, correction)
    shown = rows[: max(limit, 0)]
    significant = sum(r.significant for r in rows)
    lines = [
        f"# {_side('base:', base, b.weight, b.count)}; {_side('new:', new, n.weight, n.count)}",
        f"# {share} share by weight; two-proportion z-test on event counts, "
        f"{_CORRECTION_NAMES[correction]} correction over {len(rows)} "
        f"{'modules' if by == 'module' else 'functions'}, alpha={alpha:g}: "
        f"{significant} changed",
    ]
    title = "MODULE" if by == "module" else "FUNCTION"
    lines.append(f"{'SELF% BASE -> NEW':>18} {'DELTA':>7} {'TOTAL% BASE -> NEW':>18} "
                 f"{'DELTA':>7} {'P(ADJ)':>8} {'STATUS':<6}  {title}")
    for r in shown:
        lines.append(
            f"{100 * r.base_self_share:>6.2f}% -> {100 * r.new_self_share:>6.2f}% "
            f"{r.self_delta:>+7.2f} "
            f"{100 * r.base_total_share:>6.2f}% -> {100 * r.new_total_share:>6.2f}% "
            f"{r.total_delta:>+7.2f} {_fmt_p(r.p_adjusted):>8} {r.status:<6}  "
            f"{_printable(r.name)}"
        )
    return lines_for_terminal(lines)


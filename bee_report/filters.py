"""Filters and views applied to a Profile before any reporter runs.

Filters keep or drop samples (`--from`, `--to`, `--pid`, `--tid`, `--comm`, `--cpu`,
`--focus`, `--exclude`) or frames (`--user-only`, `--kernel-only`, `--no-inline`); views add
grouping root frames (`--per-cpu`, `--per-thread`, `--per-process`). Every output format
sees the same filtered profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bee_contract.errors import ReportError
from bee_report.diag import warn
from bee_report.profile import Frame, FrameKind, PerStack, Profile, StackSample

if TYPE_CHECKING:  # imported when --from or --to is given
    from bee_report.timewindow import Window


@dataclass(frozen=True, slots=True)
class Filters:
    """Which samples and frames to keep."""

    pids: tuple[int, ...] = ()
    tids: tuple[int, ...] = ()
    comms: tuple[str, ...] = ()
    cpus: tuple[int, ...] = ()
    user_only: bool = False
    kernel_only: bool = False
    focus: str | None = None
    exclude: str | None = None
    inline: bool = True
    per_cpu: bool = False
    per_thread: bool = False
    per_process: bool = False
    time_from: str | None = None  # --from: seconds from the start, or a date and time
    time_to: str | None = None  # --to
    #: which options name the window in messages: "" (--from) or "base-" (--base-from)
    time_prefix: str = ""


def _regex(pattern: str | None, option: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ReportError(f"{option} {pattern!r}: invalid regular expression: {exc}") from None


def _keep_frame(frame: Frame, f: Filters) -> bool:
    if f.user_only and frame.kind is FrameKind.KERNEL:
        return False
    if f.kernel_only and frame.kind is not FrameKind.KERNEL:
        return False
    return f.inline or frame.kind is not FrameKind.INLINED


def _roots(s: StackSample, f: Filters) -> tuple[Frame, ...]:
    roots = []
    if f.per_process:
        roots.append(Frame(f"pid_{s.pid}", FrameKind.ROOT))
    if f.per_thread:
        roots.append(Frame(f"tid_{s.tid} {s.thread}".rstrip(), FrameKind.ROOT))
    if f.per_cpu:
        roots.append(Frame(f"cpu_{s.cpu}", FrameKind.ROOT))
    return tuple(roots)


def validate(f: Filters) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """Check the options before any work; returns the compiled focus and exclude."""
    if f.user_only and f.kernel_only:
        raise ReportError("--user-only and --kernel-only exclude each other")
    return _regex(f.focus, "--focus"), _regex(f.exclude, "--exclude")


def time_window(profile: Profile, f: Filters) -> Window | None:
    """The `--from`/`--to` window over the profile's whole timeline, checked against it."""
    if f.time_from is None and f.time_to is None:
        return None
    from bee_report.timewindow import Span, window

    span = Span(profile.start_time_ns, max(profile.end_time_ns, profile.start_time_ns))
    win = window(f.time_from, f.time_to, span, f.time_prefix)
    if win is not None and profile.untimed:
        warn(f"{', '.join(profile.untimed)}: no time buckets (format v1); its samples count "
             "as taken in the middle of its recording")
    return win


def apply(profile: Profile, f: Filters) -> Profile:
    """A new profile with only what the filters keep, and grouping roots added."""
    focus, exclude = validate(f)
    win = time_window(profile, f)
    pids, tids, comms, cpus = set(f.pids), set(f.tids), set(f.comms), set(f.cpus)
    strip = f.user_only or f.kernel_only or not f.inline
    grouped = f.per_cpu or f.per_thread or f.per_process
    # frame work once per distinct stack; the samples of a stack keep sharing one tuple
    focused = PerStack(lambda fr: focus is None or any(focus.search(x.name) for x in fr))
    excluded = PerStack(lambda fr: exclude is not None and any(exclude.search(x.name) for x in fr))
    stripped = PerStack(lambda fr: tuple(x for x in fr if _keep_frame(x, f)))
    rooted: dict[tuple[int, tuple[Frame, ...]], tuple[Frame, ...]] = {}
    out = []
    for s in profile:
        if win is not None and not win.holds(s.time_ns, s.span_ns):
            continue
        if (pids and s.pid not in pids) or (tids and s.tid not in tids):
            continue
        if (cpus and s.cpu not in cpus) or (comms and not ({s.comm, s.thread} & comms)):
            continue
        if (focus is not None and not focused(s.frames)) or (
                exclude is not None and excluded(s.frames)):
            continue
        if strip:
            s = replace(s, frames=stripped(s.frames))
        if grouped:
            roots = _roots(s, f)
            key = (id(s.frames), roots)
            if key not in rooted:
                rooted[key] = roots + s.frames
            s = replace(s, frames=rooted[key])
        out.append(s)
    kept = profile.filtered(out)
    if win is not None:
        kept.window = (win.from_ns, win.to_ns)
    return kept

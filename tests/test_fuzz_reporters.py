"""Reporters over generated profiles: per-stack grouping and int64 saturation change
nothing they must not (bounded hypothesis runs)."""

from __future__ import annotations

import gzip

from hypothesis import given, settings
from hypothesis import strategies as st

from bee_report.profile import Frame, FrameKind, Profile, StackSample
from bee_report.reporters import folded, pprof, speedscope, top
from tests.test_pprof import ProfileProto

_frame = st.builds(Frame, st.sampled_from(["a", "b", "c;d", "e\nf"]),
                   st.sampled_from(list(FrameKind)))
_stack = st.lists(_frame, max_size=6).map(tuple)


@settings(max_examples=150, deadline=None)
@given(stacks=st.lists(_stack, min_size=1, max_size=4),
       picks=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 9),
                                st.sampled_from(["x", "y"])), max_size=30))
def test_shared_and_copied_stacks_report_the_same(
        stacks: list[tuple[Frame, ...]], picks: list[tuple[int, int, str]]) -> None:
    # GIVEN samples sharing stack tuples, and the same samples each with its own copy
    shared = [StackSample(stacks[i % len(stacks)], w, 1, 1, t, 0, comm, comm)
              for t, (i, w, comm) in enumerate(picks)]
    copied = [StackSample(tuple(list(s.frames)), s.weight, s.count, s.pid, s.tid, s.cpu,
                          s.comm, s.thread) for s in shared]
    a, b = Profile(shared), Profile(copied)
    # WHEN reported THEN grouping by shared tuples changes no output
    assert folded.render(a) == folded.render(b)
    assert top.render(a) == top.render(b)
    assert speedscope.render(a) == speedscope.render(b)
    assert pprof.render(a) == pprof.render(b)


@settings(max_examples=100, deadline=None)
@given(weights=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=5),
       period=st.integers(0, 2**40))
def test_pprof_values_are_always_valid_int64(weights: list[int], period: int) -> None:
    profile = Profile([StackSample((Frame("m"),), w, 1, 1, t, 0, "c", "c")
                       for t, w in enumerate(weights)])
    msg = ProfileProto()
    msg.ParseFromString(gzip.decompress(pprof.render(profile, period_ns=period)))
    for s in msg.sample:
        assert all(0 <= v <= pprof.INT64_MAX for v in s.value)

"""Hostile recordings (issue 15): small files that cost memory, time or output far beyond
what their content can legitimately hold, and refusals that must say what is wrong."""

from __future__ import annotations

import dataclasses
import gzip
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest

from bee_contract import codec
from bee_contract.errors import RecordingFormatError
from bee_contract.recording import JitSymbol, Mapping, Process, Recording, Sample
from bee_report import info
from bee_report.profile import Frame, Profile, StackSample
from bee_report.reporters import folded, pprof, top
from bee_report.symbolize import MAX_NAME_CHARS, MAX_STACK_FRAMES, Symbolizer
from formats.make_sample import sample_recording
from tests.conftest import REPO

BODY = msgpack.unpackb(codec.encode(sample_recording(), compress=False)[codec.PREAMBLE_SIZE:])


def _file(path: Path, body: dict[str, Any] | bytes, compress: bool = True) -> Path:
    raw = body if isinstance(body, bytes) else msgpack.packb(body, use_bin_type=True)
    if compress:
        raw = zlib.compress(raw, 9)
    pre = struct.pack(">8sHBBQI", codec.MAGIC, 1, int(compress), 0, len(raw), zlib.crc32(raw))
    path.write_bytes(pre + raw)
    return path


def _peak_rss_mb(*args: str | Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Peak RSS (MB) of `bee ARGS` run in a child that does nothing else."""
    code = ("import resource, subprocess, sys; "
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "print(r.returncode); sys.stdout.write(r.stderr)")
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "bee",
                          *map(str, args)], capture_output=True, text=True, cwd=REPO, check=True)
    rss, rc, *err = out.stdout.split("\n")
    return int(rss) / 1024, subprocess.CompletedProcess(args, int(rc), "", "\n".join(err))


@pytest.mark.parametrize("table", ["stacks", "strings", "kernel", "samples"])
def test_a_small_file_inflating_to_many_tiny_items_stays_small_in_memory(
        tmp_path: Path, table: str) -> None:
    # GIVEN a 20 KB file whose body inflates to 20 MB of one-byte items (empty stacks,
    # one-character strings, or kallsyms rows no sampled address needs)
    n = 20_000_000
    body = dict(BODY)
    if table == "stacks":
        body["stacks"] = [[]] * n
    elif table == "strings":
        body["strings"] = body["strings"] + ["ab"] * n
    elif table == "kernel":
        body["kernel"] = {**body["kernel"], "symbols": [[0, 0, 0]] * (n // 4)}
    else:
        body["samples"] = [[0, 1, 0, 0, 0, -1, 1, 1, 0]] * (n // 10)
    path = _file(tmp_path / "bomb.bee", body)
    assert path.stat().st_size < 200_000
    # WHEN reported THEN memory stays far below what a tree of 20 M objects would take
    rss, result = _peak_rss_mb("report", path, "-f", "folded")
    assert rss < 400, f"peak RSS {rss:.0f} MB"
    if table in ("stacks", "kernel"):  # unused strings are harmless, equal samples merged
        assert result.returncode == 2 and "corrupt" in result.stderr, result.stderr


def test_a_body_inflating_past_the_limit_is_refused_without_holding_it(tmp_path: Path) -> None:
    # GIVEN a 1.1 MB file whose zlib body inflates to more than 1 GiB
    comp = zlib.compressobj(9)
    raw = comp.compress(b"\x80") + b"".join(comp.compress(bytes(1 << 24)) for _ in range(66))
    raw += comp.flush()
    pre = struct.pack(">8sHBBQI", codec.MAGIC, 1, 1, 0, len(raw), zlib.crc32(raw))
    path = tmp_path / "zeros.bee"
    path.write_bytes(pre + raw)
    # WHEN read THEN it is refused with a reason, and memory never holds the inflated body
    rss, result = _peak_rss_mb("info", path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"bee: {path}: unexpected bytes after the body\n"
    assert rss < 300, f"peak RSS {rss:.0f} MB"


def test_nesting_refusal_says_why(tmp_path: Path) -> None:
    # GIVEN a body nested deeper than msgpack allows
    path = _file(tmp_path / "deep.bee", b"\x81\xa1a" + b"\x91" * 5000 + b"\xc0")
    # WHEN read THEN the message names the problem, not just "corrupt body:"
    with pytest.raises(RecordingFormatError) as exc:
        codec.read(path)
    assert "nested" in str(exc.value) and not str(exc.value).endswith(":"), str(exc.value)


def _one_stack(frames: int, samples: int, name: str = "f") -> Recording:
    rec = sample_recording()
    proc = dataclasses.replace(rec.processes[0], maps=(), jit=(JitSymbol(0x1000, 0x10, name),))
    return dataclasses.replace(
        rec, binaries=(), processes=(proc,), stacks=((0x1000,) * frames,),
        samples=tuple(Sample(0, 100 + i, 0, "app", 0, -1, 1, 1) for i in range(samples)))


def test_huge_names_and_deep_stacks_are_capped_with_one_warning(
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a 1 MiB JIT name in a stack deeper than the cap
    rec = _one_stack(MAX_STACK_FRAMES + 500, 3, "x" * (1 << 20))
    # WHEN symbolized and folded
    sym = Symbolizer()
    profile = sym.profile([("a.bee", rec)])
    text = folded.render(profile)
    # THEN frames and names are capped and each cap is said once
    assert all(len(s.frames) == MAX_STACK_FRAMES + 1 for s in profile)
    assert profile.samples[0].frames[0].name == "[truncated: 500 outer frames]"
    assert max(len(f.name) for f in profile.samples[0].frames) <= MAX_NAME_CHARS
    assert len(text) < 3 * MAX_STACK_FRAMES * (MAX_NAME_CHARS + 10)
    err = capsys.readouterr().err
    assert err.count("warning") == 2, err
    assert "deeper than" in err and "longer than" in err


class _CountingFrames(tuple):  # type: ignore[type-arg]
    iterations = 0

    def __iter__(self) -> Any:
        _CountingFrames.iterations += 1
        return super().__iter__()


def test_reporters_work_once_per_distinct_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 500 samples sharing one 200-frame stack
    frames = tuple(Frame(f"f{i}") for i in range(200))
    profile = Profile([StackSample(frames, 1, 1, 1, t, 0, "app", "app") for t in range(500)])
    calls = {"folded": 0, "label": 0}
    real_folded, real_label = Frame.folded, top.frame_label

    def counting_folded(self: Frame, lines: bool = False) -> str:
        calls["folded"] += 1
        return real_folded(self, lines)

    def counting_label(frame: Frame, by: str) -> str:
        calls["label"] += 1
        return real_label(frame, by)

    monkeypatch.setattr(Frame, "folded", counting_folded)
    monkeypatch.setattr(top, "frame_label", counting_label)
    # WHEN folded and tabled THEN each frame of the stack is formatted once, not per sample
    assert folded.render(profile).endswith(" 500\n")
    assert top.render(profile).splitlines()[2].split()[0] == "500"
    assert calls == {"folded": 200, "label": 200}


def test_info_indexes_mappings_once_per_process() -> None:
    # GIVEN a process with 300 mappings and 50 samples of a 300-frame stack
    rec = sample_recording()
    maps = _CountingFrames(Mapping(0x10000 * i, 0x10000 * i + 0x1000, 0, 0, 0, "/b", 0)
                           for i in range(1, 301))
    proc = Process(1, 0, 1, 0, "p", "/b", None, maps)
    rec = dataclasses.replace(
        rec, processes=(proc,), stacks=(tuple(0x10000 * i + 8 for i in range(1, 301)),),
        samples=tuple(Sample(0, t, 0, "p", 0, -1, 1, 1) for t in range(50)))
    _CountingFrames.iterations = 0
    # WHEN summarized THEN the hit counts are right and the mappings are walked once
    text = info.summarize(rec, "x.bee")
    assert "      50 hits  /opt/app/bin/app" in text
    assert _CountingFrames.iterations <= 2


def test_pprof_weights_saturate_at_int64_with_a_warning(
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN two samples whose weights add up past 2^64
    big = (1 << 64) - 1
    samples = [StackSample((Frame("main"),), big, 1, 1, t, 0, "a", "a") for t in (1, 1)]
    profile = Profile(samples)
    # WHEN exported with a sampling period THEN every value is a valid int64, saturated
    data = gzip.decompress(pprof.render(profile, period_ns=10_000_000, time_nanos=big))
    from tests.test_pprof import ProfileProto

    msg = ProfileProto()
    msg.ParseFromString(data)
    assert [list(s.value) for s in msg.sample] == [[(1 << 63) - 1, (1 << 63) - 1]]
    assert msg.time_nanos == (1 << 63) - 1
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "int64" in err

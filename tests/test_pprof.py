"""The pprof export, decoded with protobuf's own parser from profile.proto's descriptors.

tests/fixtures/pprof/profile.proto is turned into a FileDescriptorProto right here (a
parser for its plain subset), so neither protoc nor generated code is needed.
"""

from __future__ import annotations

import gzip
import random
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from bee_report.profile import Frame, FrameKind, Profile, StackSample
from bee_report.reporters import pprof
from tests.export_helpers import BINARIES, HOSTILE, MAIN, rich_profile, speedscope_load

PROTO = Path(__file__).parent / "fixtures" / "pprof" / "profile.proto"

_SCALARS = {
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
}
_FIELD = re.compile(r"(repeated\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)")


def file_descriptor(text: str) -> descriptor_pb2.FileDescriptorProto:
    """A FileDescriptorProto for a .proto file of messages with plain fields."""
    text = re.sub(r"//[^\n]*", "", text)
    package = re.search(r"package\s+([\w.]+)\s*;", text)
    assert package is not None
    fdp = descriptor_pb2.FileDescriptorProto(name="profile.proto", package=package[1],
                                             syntax="proto3")
    f = descriptor_pb2.FieldDescriptorProto
    for m in re.finditer(r"message\s+(\w+)\s*\{([^}]*)\}", text):
        msg = fdp.message_type.add(name=m[1])
        for decl in filter(str.strip, m[2].split(";")):
            fm = _FIELD.fullmatch(decl.strip())
            assert fm is not None, decl
            repeated, typ, name, number = fm.groups()
            field = msg.field.add(name=name, number=int(number),
                                  label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL)
            if typ in _SCALARS:
                field.type = _SCALARS[typ]
            else:
                field.type = f.TYPE_MESSAGE
                field.type_name = f".{package[1]}.{typ}"
    return fdp


def _profile_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor(PROTO.read_text()))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("perftools.profiles.Profile"))


ProfileProto = _profile_class()


def decode(data: bytes) -> Any:
    msg = ProfileProto()
    msg.ParseFromString(gzip.decompress(data))
    return msg


class View:
    """Decoded profile with its tables indexed, and samples as readable stacks."""

    def __init__(self, data: bytes) -> None:
        self.p = decode(data)
        self.st = list(self.p.string_table)
        self.functions = {f.id: f for f in self.p.function}
        self.locations = {loc.id: loc for loc in self.p.location}
        self.mappings = {m.id: m for m in self.p.mapping}
        assert len(self.functions) == len(self.p.function)
        assert len(self.locations) == len(self.p.location)
        assert len(self.mappings) == len(self.p.mapping)
        assert 0 not in self.functions and 0 not in self.locations and 0 not in self.mappings

    def s(self, i: int) -> str:
        text: str = self.st[i]
        return text

    def types(self) -> list[tuple[str, str]]:
        return [(self.s(t.type), self.s(t.unit)) for t in self.p.sample_type]

    def stack(self, sample: Any) -> tuple[str, ...]:
        """Function names root first, inlined functions included."""
        names: list[str] = []
        for lid in sample.location_id:  # leaf first
            loc = self.locations[lid]
            names += [self.s(self.functions[line.function_id].name) for line in loc.line]
        return tuple(reversed(names))

    def labels(self, sample: Any) -> dict[str, int | str]:
        out: dict[str, int | str] = {}
        for lb in sample.label:
            assert self.s(lb.key) not in out
            out[self.s(lb.key)] = self.s(lb.str) if lb.str else lb.num
        return out

    def by_sample(self, value: int = -1) -> Counter[tuple[object, ...]]:
        out: Counter[tuple[object, ...]] = Counter()
        for smp in self.p.sample:
            lb = self.labels(smp)
            key = (lb["pid"], lb["tid"], lb["cpu"], lb["comm"], lb["thread"], self.stack(smp))
            out[key] += smp.value[value]
        return out


def expected(profile: Profile, count: bool = False) -> Counter[tuple[object, ...]]:
    out: Counter[tuple[object, ...]] = Counter()
    for s in profile:
        key = (s.pid, s.tid, s.cpu, s.comm, s.thread, tuple(f.name for f in s.frames))
        out[key] += s.count if count else s.weight
    return out


def test_varint() -> None:
    assert pprof.varint(0) == b"\x00"
    assert pprof.varint(300) == b"\xac\x02"
    assert pprof.varint(-1) == b"\xff" * 9 + b"\x01"
    assert pprof.varint((1 << 64) - 1) == b"\xff" * 9 + b"\x01"


def test_samples_stacks_and_labels() -> None:
    profile = rich_profile()
    v = View(pprof.render(profile, BINARIES))
    assert v.st[0] == "" and len(set(v.st)) == len(v.st)
    assert v.types() == [("samples", "count")]
    assert v.p.period == 0 and not v.p.HasField("period_type")
    assert v.by_sample() == expected(profile)
    assert sum(s.value[0] for s in v.p.sample) == profile.total
    assert all(len(s.value) == 1 for s in v.p.sample)
    hostile = [s for s in v.p.sample if v.labels(s)["pid"] == 200]
    assert v.labels(hostile[0]) == {"pid": 200, "tid": 200, "cpu": 1,
                                    "comm": 'evil;"<proc>"', "thread": "thr\u2028\x00ead"}
    assert v.stack(hostile[0]) == (HOSTILE.name, "[unknown]")


def test_cpu_period_and_metadata() -> None:
    profile = rich_profile()
    v = View(pprof.render(profile, period_ns=10_101_010, duration_nanos=5 * 10**9,
                          time_nanos=1_700_000_000 * 10**9, comments=["bee record -F 99"]))
    assert v.types() == [("samples", "count"), ("cpu", "nanoseconds")]
    assert (v.s(v.p.period_type.type), v.s(v.p.period_type.unit)) == ("cpu", "nanoseconds")
    assert v.p.period == 10_101_010
    assert v.p.duration_nanos == 5 * 10**9 and v.p.time_nanos == 1_700_000_000 * 10**9
    assert [v.s(c) for c in v.p.comment] == ["bee record -F 99", "2 samples lost"]
    for s in v.p.sample:
        assert s.value[1] == s.value[0] * 10_101_010
    assert v.by_sample(0) == expected(profile)


def test_off_cpu_nanoseconds() -> None:
    profile = rich_profile("nanoseconds")
    v = View(pprof.render(profile, period_ns=123))
    assert v.types() == [("samples", "count"), ("off-cpu", "nanoseconds")]
    assert v.p.period == 0  # a sampling period means nothing for off-CPU time
    assert v.by_sample(1) == expected(profile)
    assert v.by_sample(0) == expected(profile, count=True)
    v = View(pprof.render(profile, weight_type="wall"))
    assert v.types()[1] == ("wall", "nanoseconds")


def test_inlined_frames_share_a_location() -> None:
    v = View(pprof.render(rich_profile(), BINARIES))
    inlined = ("main", "compute", "vec_add", "scalar_add")
    app = next(s for s in v.p.sample if v.labels(s)["tid"] == 101 and v.stack(s) == inlined)
    assert len(app.location_id) == 2
    leaf = v.locations[app.location_id[0]]
    names = [v.s(v.functions[ln.function_id].name) for ln in leaf.line]
    assert names == ["scalar_add", "vec_add", "compute"]  # innermost first
    assert [ln.line for ln in leaf.line] == [3, 7, 42]
    assert leaf.address == 0x401100
    files = [v.s(v.functions[ln.function_id].filename) for ln in leaf.line]
    assert files == ["/src/vec.h", "/src/vec.h", "/src/app.c"]
    m = v.mappings[leaf.mapping_id]
    assert (m.has_functions, m.has_filenames, m.has_line_numbers, m.has_inline_frames) == (
        True, True, True, True)
    # compute without inlined callees is a different location
    plain = next(s for s in v.p.sample if v.stack(s) == ("main", "compute"))
    assert plain.location_id[0] != app.location_id[0]


def test_inline_groups() -> None:
    f = Frame("f", FrameKind.USER, "m", address=0x10)
    i1 = Frame("i1", FrameKind.INLINED, "m", address=0x10)
    i2 = Frame("i2", FrameKind.INLINED, "m")  # no address: joins its caller
    far = Frame("far", FrameKind.INLINED, "m", address=0x99)  # elsewhere: on its own
    groups = pprof.inline_groups((MAIN, f, i1, i2))
    assert [[x.name for x in g] for g in groups] == [["i2", "i1", "f"], ["main"]]
    groups = pprof.inline_groups((far, f, far))
    assert [[x.name for x in g] for g in groups] == [["far"], ["f"], ["far"]]
    nowhere = Frame("g", FrameKind.USER, "m")
    groups = pprof.inline_groups((nowhere, i1, i2))
    assert [[x.name for x in g] for g in groups] == [["i2", "i1", "g"]]
    v = View(pprof.render(Profile([StackSample((nowhere, i1, i2), 1, 1, 1, 1, 0, "c", "t")])))
    (loc,) = v.p.location
    assert loc.address == 0x10 and len(loc.line) == 3
    assert pprof.inline_groups(()) == []


def test_mappings_locations_functions() -> None:
    v = View(pprof.render(rich_profile(), BINARIES))
    maps = {v.s(m.filename): (v.s(m.build_id), m.has_functions) for m in v.p.mapping}
    assert maps == {
        "/usr/bin/app": ("aa11", True), "/usr/lib/x86_64-linux-gnu/libc.so.6": ("cc33", True),
        "[kernel.kallsyms]": ("", True), "[ext4]": ("", True), "[jit]": ("", True),
        "/usr/bin/node": ("", True), "lib wëird;.so": ("", True),
    }
    for loc in v.p.location:
        assert loc.mapping_id == 0 or loc.mapping_id in v.mappings
        assert all(ln.function_id in v.functions for ln in loc.line) and loc.line
    addrs = {v.s(v.functions[loc.line[-1].function_id].name): (loc.address, loc.mapping_id)
             for loc in v.p.location}
    assert addrs["ksys_write"][0] == 0xFFFFFFFF81300000
    assert v.s(v.mappings[addrs["ksys_write"][1]].filename) == "[kernel.kallsyms]"
    assert addrs["[unknown]"] == (0x1234, 0)  # no module, no mapping
    for fn in v.p.function:
        assert fn.system_name == fn.name
    names = [v.s(fn.name) for fn in v.p.function]
    assert len(names) == len(set(names))
    assert "LazyCompile:*hot /app/x.js:12" in names  # no kind suffixes in pprof


def test_ambiguous_basenames_get_no_build_id() -> None:
    profile = Profile([StackSample((MAIN,), 1, 1, 1, 1, 0, "app", "app")])
    v = View(pprof.render(profile, [("/a/app", "01"), ("/b/app", "02")]))
    assert [(v.s(m.filename), v.s(m.build_id)) for m in v.p.mapping] == [("app", "")]
    v = View(pprof.render(profile, [("/a/app", "01"), ("/a/app", "01")]))
    assert [(v.s(m.filename), v.s(m.build_id)) for m in v.p.mapping] == [("/a/app", "01")]


@dataclass(frozen=True, slots=True)
class _FrameWithBinary(Frame):
    """A Frame as it would be if profile.Frame carried its binary's path and build-id."""

    path: str = ""
    build_id: str | None = None


def test_frame_path_and_build_id_win_over_binaries() -> None:
    a = _FrameWithBinary("f", FrameKind.USER, "app", address=1, path="/opt/app", build_id="ff")
    b = _FrameWithBinary("g", FrameKind.USER, "app", address=2, path="/srv/app")
    c = _FrameWithBinary("h", FrameKind.USER, "app", address=3, build_id="02")
    d = _FrameWithBinary("i", FrameKind.USER, "app", address=4, build_id="03")
    profile = Profile([StackSample((a, b, c, d), 1, 1, 1, 1, 0, "app", "app")])
    binaries = [("/usr/bin/app", "01"), ("/srv/app", None), ("/usr/local/bin/app", "02")]
    v = View(pprof.render(profile, binaries))
    maps = sorted((v.s(m.filename), v.s(m.build_id)) for m in v.p.mapping)
    assert maps == [("/opt/app", "ff"), ("/srv/app", ""), ("/usr/local/bin/app", "02"),
                    ("app", "03")]


def test_deterministic_and_merged() -> None:
    profile = rich_profile()
    data = pprof.render(profile, BINARIES, period_ns=1000)
    assert data[4:8] == b"\x00\x00\x00\x00"  # gzip mtime
    shuffled = list(profile.samples)
    random.Random(7).shuffle(shuffled)
    again = Profile(shuffled, profile.unit, profile.sources, profile.lost)
    assert pprof.render(again, BINARIES, period_ns=1000) == data
    doubled = Profile(profile.samples * 2, profile.unit, lost=profile.lost)
    v = View(pprof.render(doubled, BINARIES))
    assert len(v.p.sample) == len(View(data).p.sample)
    assert v.by_sample() == expected(doubled)


def test_unencodable_names_and_empty_profile() -> None:
    bad = Frame("bad\udcff\ud800name", FrameKind.USER, "m\udce9")
    v = View(pprof.render(Profile([StackSample((bad,), 2, 2, 1, 1, 0, "c", "t")])))
    assert "bad\\udcff\\ud800name" in v.st
    empty = View(pprof.render(Profile()))
    assert empty.st == ["", "samples", "count", "pid", "tid", "cpu", "comm", "thread"]
    assert len(empty.p.sample) == 0


def test_events_label_only_when_several() -> None:
    a = StackSample((MAIN,), 1, 1, 1, 1, 0, "p", "p", event="cpu-clock")
    b = StackSample((MAIN,), 1, 1, 1, 1, 0, "p", "p", event="cycles")
    v = View(pprof.render(Profile([a, b])))
    assert sorted(v.labels(s)["event"] for s in v.p.sample) == ["cpu-clock", "cycles"]
    v = View(pprof.render(Profile([a])))
    assert "event" not in v.st


def test_loads_in_speedscope() -> None:
    """speedscope's pprof importer (protobufjs) decodes it too; it keeps outer functions."""
    profile = rich_profile()
    got = speedscope_load("pprof", pprof.render(profile, BINARIES, period_ns=1000))
    profiles: list[dict[str, Any]] = got["profiles"]  # type: ignore[assignment]
    (prof,) = profiles
    assert prof["unit"] == "nanoseconds" and prof["total"] == profile.total * 1000
    stacks: Counter[tuple[str, ...]] = Counter()
    for names, weight in prof["stacks"]:
        stacks[tuple(names)] += weight
    want: Counter[tuple[str, ...]] = Counter()
    for s in profile:
        if s.weight > 0:
            want[tuple(f.name for f in s.frames if f.kind is not FrameKind.INLINED)] += (
                s.weight * 1000)
    assert stacks == want


def test_go_tool_pprof(tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed: `go tool pprof` cannot be tried")
    path = tmp_path / "bee.pb.gz"
    path.write_bytes(pprof.render(rich_profile(), BINARIES, period_ns=1000))
    out = subprocess.run([go, "tool", "pprof", "-top", "-nodecount=100", str(path)],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    for name in ("compute", "scalar_add", "ksys_write", "do_idle"):
        assert name in out

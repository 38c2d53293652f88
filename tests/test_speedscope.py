"""The speedscope JSON export: schema, stacks, weights, determinism, and speedscope itself."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from bee_report.profile import Frame, FrameKind, Profile, StackSample
from bee_report.reporters import speedscope
from tests.export_helpers import (
    COMPUTE,
    HOSTILE,
    MAIN,
    expected_stacks,
    rich_profile,
    speedscope_load,
    speedscope_package,
)

# --- a JSON-schema checker for the draft-07 subset speedscope's schema uses ---------------

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "number": (int, float),
    "boolean": (bool,),
}


def _errors(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        return _errors(value, root["definitions"][name], root, where)
    if "anyOf" in schema:
        options = [_errors(value, s, root, where) for s in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{where}: matches no anyOf: {options}"]
    errs: list[str] = []
    t = schema.get("type")
    if t is not None:
        ok = isinstance(value, _TYPES[t]) and not (t == "number" and isinstance(value, bool))
        if not ok:
            return [f"{where}: {value!r} is not a {t}"]
    if "const" in schema and value != schema["const"]:
        errs.append(f"{where}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        errs += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                errs += _errors(value[k], sub, root, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errs += _errors(item, schema["items"], root, f"{where}[{i}]")
    return errs


def schema_errors(doc: Any) -> list[str]:
    """Violations of speedscope's file-format-schema.json, read from its npm package."""
    schema = json.loads((speedscope_package() / "dist" / "release" /
                         "file-format-schema.json").read_text())
    return _errors(doc, schema, schema, "$")


def test_schema_checker_catches_violations() -> None:
    assert schema_errors({"$schema": speedscope.SCHEMA, "shared": {"frames": []},
                          "profiles": []}) == []
    bad = {"$schema": "x", "shared": {"frames": [{"file": 3}]},
           "profiles": [{"type": "sampled", "unit": "furlongs", "samples": [["a"]]}]}
    errs = "\n".join(schema_errors(bad))
    for needle in ("'x' != ", "missing 'name'", "matches no anyOf"):
        assert needle in errs


# --- the export ----------------------------------------------------------------------------


def load(profile: Profile, **kwargs: Any) -> dict[str, Any]:
    text = speedscope.render(profile, **kwargs)
    assert text.endswith("\n") and text.isascii()
    doc: dict[str, Any] = json.loads(text)
    return doc


def decoded_stacks(doc: dict[str, Any], prof: dict[str, Any]) -> Counter[tuple[str, ...]]:
    frames = doc["shared"]["frames"]
    out: Counter[tuple[str, ...]] = Counter()
    for stack, weight in zip(prof["samples"], prof["weights"], strict=True):
        out[tuple(frames[i]["name"] for i in stack)] += weight
    return out


@pytest.mark.parametrize("per_thread", [False, True])
@pytest.mark.parametrize("unit", ["samples", "nanoseconds"])
def test_valid_against_schema_with_required_fields(per_thread: bool, unit: str) -> None:
    doc = load(rich_profile(unit), per_thread=per_thread, name="my run")
    assert schema_errors(doc) == []
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert doc["exporter"] == "bee" and doc["name"] == "my run"
    assert doc["activeProfileIndex"] == 0
    for prof in doc["profiles"]:
        assert prof["type"] == "sampled"
        assert prof["unit"] == ("nanoseconds" if unit == "nanoseconds" else "none")
        assert prof["startValue"] == 0
        assert len(prof["samples"]) == len(prof["weights"]) > 0
        assert all(w > 0 for w in prof["weights"])
        n = len(doc["shared"]["frames"])
        assert all(0 <= i < n for stack in prof["samples"] for i in stack)


@pytest.mark.parametrize("per_thread", [False, True])
def test_weights_sum_and_stacks(per_thread: bool) -> None:
    profile = rich_profile()
    doc = load(profile, per_thread=per_thread)
    want = expected_stacks(profile, per_thread)
    assert len(doc["profiles"]) == len(want)
    total = 0
    for prof, key in zip(doc["profiles"], sorted(want), strict=True):
        assert prof["endValue"] == sum(prof["weights"])
        assert decoded_stacks(doc, prof) == want[key]
        total += prof["endValue"]
    assert total == profile.total  # the zero-weight sample adds nothing


def test_profiles_sorted_and_named() -> None:
    profile = rich_profile()
    names = [p["name"] for p in load(profile)["profiles"]]
    assert names == ["swapper/0 (pid 0)", "app (pid 100)", 'evil;"<proc>" (pid 200)',
                     "node (pid 300)"]
    names = [p["name"] for p in load(profile, per_thread=True)["profiles"]]
    assert names == ["swapper/0 (pid 0, tid 0)", "app (pid 100, tid 100)",
                     "app/worker-1 (pid 100, tid 101)",
                     'evil;"<proc>"/thr\u2028\x00ead (pid 200, tid 200)',
                     "node (pid 300, tid 300)", "node/V8 Worker ☃ (pid 300, tid 301)"]


def test_renamed_thread_stays_one_profile_exec_splits_a_process() -> None:
    s = StackSample((MAIN,), 5, 5, 7, 8, 0, "sh", "sh")
    profile = Profile([s, StackSample((MAIN,), 9, 9, 7, 8, 0, "app", "app-main")])
    assert [p["name"] for p in load(profile)["profiles"]] == ["app (pid 7)", "sh (pid 7)"]
    threads = load(profile, per_thread=True)["profiles"]
    assert [p["name"] for p in threads] == ["app/app-main (pid 7, tid 8)"]
    assert threads[0]["weights"] == [14]


def test_frames_deduplicated_marked_and_located() -> None:
    doc = load(rich_profile())
    frames = doc["shared"]["frames"]
    assert len({json.dumps(f, sort_keys=True) for f in frames}) == len(frames)
    by_name = {f["name"]: f for f in frames}
    assert by_name["ksys_write [k]"] == {"name": "ksys_write [k]", "file": "[kernel.kallsyms]"}
    assert by_name["ext4_file_write_iter [k]"]["file"] == "[ext4]"
    assert by_name["LazyCompile:*hot /app/x.js:12 [jit]"]["file"] == "[jit]"
    assert by_name["vec_add [inlined]"] == {"name": "vec_add [inlined]", "file": "/src/vec.h"}
    assert by_name["__GI___libc_write"]["file"] == "libc.so.6"  # no source: the binary
    assert by_name[HOSTILE.name]["file"] == HOSTILE.file
    assert by_name["[unknown]"] == {"name": "[unknown]"}
    assert not any("line" in f for f in frames)


def test_lines_split_call_sites() -> None:
    a = Frame("f", FrameKind.USER, "app", "/src/f.c", 3, 0x10)
    b = Frame("f", FrameKind.USER, "app", "/src/f.c", 9, 0x20)
    profile = Profile([StackSample((MAIN, a), 1, 1, 1, 1, 0, "p", "p"),
                       StackSample((MAIN, b), 2, 2, 1, 1, 0, "p", "p")])
    assert len(load(profile)["shared"]["frames"]) == 2
    frames = load(profile, lines=True)["shared"]["frames"]
    assert frames[1:] == [{"name": "f", "file": "/src/f.c", "line": 3},
                          {"name": "f", "file": "/src/f.c", "line": 9}]
    assert frames[0] == {"name": "main", "file": "/src/app.c", "line": MAIN.line}


def test_identical_stacks_merged_and_output_deterministic() -> None:
    profile = rich_profile()
    text = speedscope.render(profile, per_thread=True)
    shuffled = list(profile.samples)
    random.Random(4).shuffle(shuffled)
    assert speedscope.render(Profile(shuffled, profile.unit), per_thread=True) == text
    doc = json.loads(speedscope.render(profile))
    app = doc["profiles"][1]
    stacks = [tuple(s) for s in app["samples"]]
    assert len(stacks) == len(set(stacks))
    inlined = ("main", COMPUTE.name, "vec_add [inlined]", "scalar_add [inlined]")
    assert decoded_stacks(doc, app)[inlined] == 50 + 7  # from two threads


def test_round_trip_and_empty() -> None:
    doc = load(rich_profile())
    again = json.loads(json.dumps(doc))
    assert again == doc
    assert HOSTILE.name in {f["name"] for f in doc["shared"]["frames"]}
    empty = load(Profile())
    assert empty["profiles"] == [] and empty["shared"]["frames"] == []
    assert schema_errors(empty) == []


# --- speedscope's own importer ---------------------------------------------------------------


@pytest.mark.parametrize("per_thread", [False, True])
@pytest.mark.parametrize("unit", ["samples", "nanoseconds"])
def test_loads_in_speedscope(per_thread: bool, unit: str) -> None:
    profile = rich_profile(unit)
    text = speedscope.render(profile, per_thread=per_thread, name="bee run")
    got = speedscope_load("json", text.encode())
    doc = json.loads(text)
    want = expected_stacks(profile, per_thread)
    assert got["name"] == "bee run" and got["indexToView"] == 0
    profiles: list[dict[str, Any]] = got["profiles"]  # type: ignore[assignment]
    assert [p["name"] for p in profiles] == [p["name"] for p in doc["profiles"]]
    for prof, key in zip(profiles, sorted(want), strict=True):
        assert prof["unit"] == ("nanoseconds" if unit == "nanoseconds" else "none")
        assert prof["total"] == sum(want[key].values())
        stacks: Counter[tuple[str, ...]] = Counter()
        for names, weight in prof["stacks"]:
            stacks[tuple(names)] += weight
        assert stacks == want[key]

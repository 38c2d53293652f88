"""`bee report`, `bee info` and `bee diff` through the CLI, without BPF: golden outputs of the
committed sample recording, filters, error lines, the symbol cache and hostile inputs."""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bee_contract import codec
from bee_contract.recording import Binary, Mapping, Process, Sample
from formats.make_sample import SAMPLE, SAMPLE_V1, python_elf, sample_recording
from tests.conftest import run_bee
from tests.golden import golden


@pytest.mark.parametrize(("args", "name"), [
    (("report", SAMPLE, "-f", "folded"), "sample.folded"),
    (("report", SAMPLE, "-f", "top"), "sample.top.txt"),
    (("report", SAMPLE, "-f", "top", "--by", "module"), "sample.top-module.txt"),
    (("report", SAMPLE, "-f", "folded", "--per-cpu", "--kernel-only"), "sample.cpu-kernel.folded"),
    (("info", SAMPLE), "sample.info.txt"),
    (("info", SAMPLE, "--from", "0.25", "--to", "16:00:00.75"), "sample.info-window.txt"),
    (("info", SAMPLE_V1), "sample-v1.info.txt"),
    (("report", SAMPLE, "-f", "folded", "--from", "0.5"), "sample.from.folded"),
    (("report", SAMPLE, "-f", "folded", "--to", "2025-11-24T17:00:00.5+01:00"),
     "sample.to.folded"),
    (("diff", SAMPLE, "--split", "0.5", "-f", "folded"), "sample.split.diff.folded"),
])
def test_golden_outputs_of_the_sample(cli: Callable[..., Any], args: tuple[str, ...],
                                      name: str) -> None:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    golden(name, result.stdout.replace(str(SAMPLE), "formats/sample-v2.bee")
           .replace(str(SAMPLE_V1), "formats/sample-v1.bee"))


def test_python_frames_replace_the_eval_loop_they_ran_in(tmp_path: Path,
                                                         cli: Callable[..., Any]) -> None:
    # GIVEN the sample, and in a symbols folder a python3.11 with the recorded build-id
    (tmp_path / "python3.11").write_bytes(python_elf())
    # WHEN its Python process is reported with lines
    result = cli("report", SAMPLE, "-f", "folded", "--pid", "5151", "--lines",
                 "--symbols", tmp_path)
    # THEN the Python frames stand where _PyEval_EvalFrameDefault was, at their lines
    assert result.exit_code == 0, result.output
    golden("sample.python-lines.folded", result.stdout)


def test_one_warning_per_unfound_binary(cli: Callable[..., Any]) -> None:
    result = cli("report", SAMPLE, "-f", "folded")
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 3
    assert any("/opt/app/bin/app: not found" in w for w in warnings)


@pytest.mark.parametrize(("flags", "expect"), [
    (("--comm", "kworker/0:1"), {"kworker/0:1;do_idle_[k];native_safe_halt_[k] 2"}),
    (("--pid", "77"), {"kworker/0:1;do_idle_[k];native_safe_halt_[k] 2"}),
    (("--tid", "4243", "--user-only"), {"app;libc.so.6+0x4f249;app+0x119f;app+0x1150 7",
                                        "app;[lost user stack] 1"}),
    (("--exclude", "^app\\+0x1150$", "--cpu", "0"),
     {"kworker/0:1;do_idle_[k];native_safe_halt_[k] 2",
      "python3;[lost Python stack]_[py];libc.so.6+0x4f249;python3.11+0x1cf;python3.11+0x188 1"}),
])
def test_filters(cli: Callable[..., Any], flags: tuple[str, ...], expect: set[str]) -> None:
    result = cli("report", SAMPLE, "-f", "folded", *flags)
    assert set(result.stdout.splitlines()) == expect


def test_focus_keeps_stacks_through_a_frame(cli: Callable[..., Any]) -> None:
    lines = cli("report", SAMPLE, "-f", "folded", "--focus", "do_idle").stdout.splitlines()
    assert len(lines) == 3 and all("do_idle" in line for line in lines)


@pytest.mark.parametrize(("args", "message"), [
    (("report", "/nonexistent.bee"), "bee: /nonexistent.bee: cannot read: No such file"),
    (("report", SAMPLE, "-f", "xml"), "bee: --format xml: choose one of"),
    (("report", SAMPLE, "--focus", "("), "bee: --focus '(': invalid regular expression"),
    (("report", SAMPLE, "--symbols", "/nonexistent"), "bee: /nonexistent: symbols folder"),
    (("info", "/etc/hostname"), "bee: /etc/hostname: not a bee recording (bad magic)"),
])
def test_errors_are_one_line(cli: Callable[..., Any], args: tuple[str, ...],
                             message: str) -> None:
    result = cli(*args)
    assert result.exit_code != 0
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1


def test_newer_format_version_is_one_line_and_exit_2(tmp_path: Path,
                                                     cli: Callable[..., Any]) -> None:
    data = bytearray(SAMPLE.read_bytes())
    data[8:10] = struct.pack(">H", 9)
    path = tmp_path / "future.bee"
    path.write_bytes(bytes(data))
    result = cli("report", path)
    assert result.exit_code == 2
    assert result.stderr == (f"bee: {path}: format version 9 is newer than this bee supports "
                             f"({codec.FORMAT_VERSION}); upgrade bee to read it\n")


def _recording_of(binary: Path, tmp: Path) -> Path:
    """A recording whose one process maps `binary`, with a sample at its `main`."""
    nm = subprocess.run(["nm", str(binary)], capture_output=True, text=True, check=True).stdout
    main = next(int(line.split()[0], 16) for line in nm.splitlines() if line.endswith(" main"))
    base = 0x555555554000
    build_id = _build_id(binary)
    rec = sample_recording()
    proc = Process(pid=10, generation=0, ns_pid=10, ppid=1, comm="prog", exe=str(binary),
                   cmdline=None, maps=(Mapping(base, base + 0x100000, 0, 0, 0, str(binary), 0),))
    import dataclasses

    rec = dataclasses.replace(
        rec, binaries=(Binary(str(binary), build_id, 0),), processes=(proc,),
        stacks=((base + main + 4,),),
        samples=(Sample(0, 10, 0, "prog", 0, -1, 5, 5),),
    )
    out = tmp / "prog.bee"
    codec.write(rec, out)
    return out


def _build_id(path: Path) -> str:
    from bee_contract.buildid import build_id_of_path

    got = build_id_of_path(str(path))
    assert got is not None
    return got


def test_malformed_elf_in_symbols_folder_is_one_warning(
    build_c: Callable[..., Path], tmp_path: Path, cli: Callable[..., Any]
) -> None:
    # GIVEN a recording of a binary, and in the symbols folder only a truncated copy of it
    prog = build_c("chain.c", name="prog")
    rec = _recording_of(prog, tmp_path)
    symbols = tmp_path / "sym"
    symbols.mkdir()
    data = prog.read_bytes()
    (symbols / "prog").write_bytes(data[:4096])  # headers and notes survive, the rest not
    prog.unlink()
    # WHEN reported THEN one warning names the file, and frames stay module+offset
    result = cli("report", rec, "--symbols", symbols, "-f", "folded")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("prog;prog+0x")
    assert result.stderr.count("warning") == 1 and str(symbols / "prog") in result.stderr


def test_symbol_cache_is_used_and_a_corrupt_entry_is_rebuilt(
    build_c: Callable[..., Path], tmp_path: Path
) -> None:
    prog = build_c("chain.c", name="prog")
    rec = _recording_of(prog, tmp_path)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = run_bee("report", rec, "-f", "folded", "--lines", env=env)
    assert first.returncode == 0 and "main [" in first.stdout, first.stderr
    entries = [p for p in (tmp_path / "cache" / "bee").rglob("*") if p.is_file()]
    assert entries, "the first report fills the cache"
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[:100] + b"garbage")
    second = run_bee("report", rec, "-f", "folded", "--lines", env=env)
    assert second.returncode == 0 and second.stdout == first.stdout
    assert second.stderr == first.stderr
    nocache = run_bee("report", rec, "-f", "folded", "--lines", "--no-cache",
                      env={**env, "XDG_CACHE_HOME": str(tmp_path / "other")})
    assert nocache.stdout == first.stdout
    assert not (tmp_path / "other").exists()


def test_diff_of_a_recording_with_itself_is_all_noise(cli: Callable[..., Any]) -> None:
    result = cli("diff", SAMPLE, SAMPLE, "-f", "top")
    assert result.exit_code == 0
    assert "0 changed" in result.stdout
    folded = cli("diff", SAMPLE, SAMPLE, "-f", "folded").stdout.splitlines()
    assert all(line.split()[-1] == line.split()[-2] for line in folded)


def test_outputs_to_files_say_wrote(tmp_path: Path, cli: Callable[..., Any]) -> None:
    for fmt, name in (("svg", "x.svg"), ("speedscope", "x.json"), ("pprof", "x.pb.gz")):
        out = tmp_path / name
        result = cli("report", SAMPLE, "-f", fmt, "-o", out, "--renderer", "builtin")
        assert result.exit_code == 0, result.stderr
        assert f"Wrote {out}" in result.stderr and out.stat().st_size > 100


def test_hostile_recorded_paths_are_not_joined_to_folders(tmp_path: Path) -> None:
    # GIVEN a recording whose binary path climbs out of any folder it is joined to
    from bee_report.find.locate import Locator, safe_recorded_path

    assert not safe_recorded_path("/../../etc/passwd")
    assert not safe_recorded_path("relative/bin")
    assert not safe_recorded_path("/usr/bin/x\x00y")
    assert safe_recorded_path("/usr/lib/x86_64-linux-gnu/libc.so.6")
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for you")
    symbols = tmp_path / "sym" / "a" / "b"
    symbols.mkdir(parents=True)
    loc = Locator([symbols], use_original_paths=True)
    # WHEN looked up THEN nothing outside the symbols folder is tried
    assert list(loc._candidates("/../../../secret", None)) == []
    assert loc.find("/../../../secret", None) is None

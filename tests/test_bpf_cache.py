"""The cache of bcc's compiled BPF program (`bee_record.bpf_load`), its folder's rules,
and the compiled programs bee ships.

Pure tests of the instruction patching, the entry codec and the folder rules; real-BPF
tests that a launch whose compile is cached runs no clang and records the same kinds of
samples, that a damaged entry falls back to a compile that still records, and that the
shipped programs equal a compile of the current source and load on a first launch.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bee_contract import codec
from bee_record import bpf_load, cachedir
from bee_record.bpf_load import Entry, EntryError, MapDef
from tests.conftest import SRC, run_bee
from tests.test_unwind_bpf import bee_names, rooted

INSN = struct.Struct("<BBhi")


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return INSN.pack(code, dst | src << 4, off, imm)


def ld_map(fd: int, dst: int = 1, src: int = 1) -> bytes:
    """An ld_imm64 of a map descriptor (two instructions; the second's imm looks like one)."""
    return insn(0x18, dst, src, 0, fd) + insn(0, 0, 0, 0, fd)


EXIT = insn(0x95)
MOV_R0 = insn(0xB7, 0, 0, 0, 0)


# -- instruction patching -----------------------------------------------------------------

def test_map_descriptors_become_indices_and_back() -> None:
    # GIVEN a program loading maps with descriptors 7 and 9, and a plain 64-bit constant
    prog = MOV_R0 + ld_map(9) + ld_map(7, dst=2) + ld_map(9, src=0) + EXIT
    # WHEN the descriptors are replaced by the maps' indices
    stored = bpf_load.maps_to_indices(prog, {7: 0, 9: 1})
    # THEN only the first half of each map ld_imm64 changes, to the index
    assert stored == MOV_R0 + ld_map(1)[:8] + insn(0, imm=9) + ld_map(0, dst=2)[:8] + \
        insn(0, imm=7) + ld_map(9, src=0) + EXIT
    # AND new descriptors are put back where the indices were
    assert bpf_load.indices_to_maps(stored, [40, 41]) == \
        MOV_R0 + ld_map(41)[:8] + insn(0, imm=9) + ld_map(40, dst=2)[:8] + insn(0, imm=7) + \
        ld_map(9, src=0) + EXIT


@pytest.mark.parametrize(("prog", "why"), [
    (ld_map(5) + EXIT, "names no map"),                 # a descriptor of no known map
    (ld_map(7, src=2) + EXIT, "pseudo source 2"),       # a map value: not restorable
    (MOV_R0 + EXIT + b"\0" * 3, "whole number"),        # truncated
    (MOV_R0 + ld_map(7)[:8], "cut in half"),            # ld_imm64 at the very end
])
def test_unrestorable_programs_are_refused(prog: bytes, why: str) -> None:
    with pytest.raises(EntryError, match=why):
        bpf_load.maps_to_indices(prog, {7: 0})


def test_an_index_beyond_the_maps_is_refused() -> None:
    with pytest.raises(EntryError, match="names no map"):
        bpf_load.indices_to_maps(ld_map(2) + EXIT, [30, 31])


# -- entries ---------------------------------------------------------------------------

def entry() -> Entry:
    m = MapDef("counts", 1, 4, 8, 128, 0, '"unsigned int"', '"unsigned long long"')
    return Entry((m,), {"prog": MOV_R0 + ld_map(0) + EXIT}, "GPL", 0)


def test_entry_round_trip_and_key_check() -> None:
    data = bpf_load.encode("k1", entry())
    assert bpf_load.decode(data, "k1") == entry()
    with pytest.raises(EntryError, match="another key"):
        bpf_load.decode(data, "k2")


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "empty"])
def test_damaged_entries_are_refused(damage: str) -> None:
    data = bytearray(bpf_load.encode("k", entry()))
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "flip":
        data[-3] ^= 0x40
    elif damage == "magic":
        data[0] ^= 1
    else:
        data = bytearray()
    with pytest.raises(EntryError):
        bpf_load.decode(bytes(data), "k")


def test_an_entry_naming_a_missing_map_is_refused() -> None:
    bad = Entry(entry().maps, {"prog": ld_map(3) + EXIT}, "GPL", 0)
    with pytest.raises(EntryError, match="names no map"):
        bpf_load.decode(bpf_load.encode("k", bad), "k")


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=9) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=6),
    max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(["key", "license", "kern_version", "maps",
                                            "funcs", "x"]), _VALUES, max_size=6),
       keep_key=st.booleans())
def test_any_well_checksummed_body_decodes_or_is_refused(doc: dict[str, Any],
                                                         keep_key: bool) -> None:
    # GIVEN any msgpack body under a valid checksum (a cache entry written by a bug)
    if keep_key:
        doc["key"] = "k"
    # THEN decoding gives an entry or refuses it (EntryError), never another exception
    e = _decode_checksummed(doc)
    if e is None:
        return
    assert all(isinstance(v, bytes) for v in e.funcs.values())


def _decode_checksummed(doc: dict[str, Any]) -> bpf_load.Entry | None:
    """`doc` as an entry body under a valid checksum, decoded; None when it is refused."""
    body = msgpack.packb(doc, use_bin_type=True)
    data = b"BEEBPF1\0" + hashlib.blake2b(body, digest_size=16).digest() + body
    try:
        return bpf_load.decode(data, "k")
    except EntryError:
        return None


@settings(max_examples=300, deadline=None)
@given(where=st.sampled_from(["map", "func", "funcs", "license", "kern_version"]),
       field=st.integers(0, 7), value=_VALUES)
def test_a_good_entry_with_one_value_changed_decodes_or_is_refused(where: str, field: int,
                                                                  value: Any) -> None:
    # GIVEN a valid entry's body with one value replaced by anything, checksummed anew
    doc = msgpack.unpackb(bpf_load.encode("k", entry())[24:], raw=False)
    if where == "map":
        doc["maps"][0][field] = value
    elif where == "func":
        doc["funcs"]["prog"] = value
    else:
        doc[where] = value
    # THEN it decodes to a consistent entry or is refused, never another exception
    e = _decode_checksummed(doc)
    if e is None:
        return
    assert all(len(code) % 8 == 0 for code in e.funcs.values())
    assert all(isinstance(m.name, str) and isinstance(m.key_desc, str)
               and isinstance(m.leaf_desc, str) and m.key_size >= 0 and m.flags >= 0
               for m in e.maps)
    assert isinstance(e.license, str) and 0 <= e.kern_version < 1 << 32


def test_cache_key_follows_source_and_bcc(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    base = bpf_load.cache_key("int x;", "0.26.0")
    assert base == bpf_load.cache_key("int x;", "0.26.0")
    keys = {base, bpf_load.cache_key("int y;", "0.26.0"),
            bpf_load.cache_key("int x;", "0.27.0")}
    # a libbcc file of the same version but another build (size, time) is another key
    lib = tmp_path / "libbcc.so.0"
    lib.write_bytes(b"one build")
    monkeypatch.setattr(bpf_load, "_loaded_libbcc", lambda: str(lib))
    keys.add(bpf_load.cache_key("int x;", "0.26.0"))
    lib.write_bytes(b"another build")
    keys.add(bpf_load.cache_key("int x;", "0.26.0"))
    assert len(keys) == 5


# -- the folder's rules ---------------------------------------------------------------

@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    f = tmp_path / "bpf"
    f.mkdir(mode=0o700)
    return f


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv(cachedir.ENV, str(tmp_path))
    assert cachedir.cache_dir("bpf") == tmp_path / "bpf"
    monkeypatch.setenv(cachedir.ENV, "relative")  # ignored, like a relative XDG path
    assert cachedir.cache_dir("bpf") != Path("relative/bpf")


def test_entries_written_are_read_back_within_bounds(folder: Path) -> None:
    path = folder / "a.bpf"
    assert cachedir.write_entry(path, b"x" * 100)
    assert path.stat().st_mode & 0o777 == 0o600
    assert cachedir.read_entry(path, 100) == b"x" * 100
    assert cachedir.read_entry(path, 99) is None  # larger than its bound


def test_entries_open_to_others_or_not_regular_are_not_read(folder: Path) -> None:
    path = folder / "a.bpf"
    cachedir.write_entry(path, b"data")
    path.chmod(0o644)
    assert cachedir.read_entry(path, 100) is None
    path.chmod(0o600)
    link = folder / "b.bpf"
    link.symlink_to(path)
    assert cachedir.read_entry(link, 100) is None
    fifo = folder / "c.bpf"
    os.mkfifo(fifo, 0o600)
    assert cachedir.read_entry(fifo, 100) is None  # and never blocks
    folder.chmod(0o777)
    assert cachedir.read_entry(path, 100) is None  # a folder others can write
    assert not cachedir.write_entry(folder / "d.bpf", b"data")
    assert not (folder / "d.bpf").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_entries_of_another_user_are_not_read(folder: Path) -> None:
    path = folder / "a.bpf"
    cachedir.write_entry(path, b"data")
    os.chown(path, 65534, 65534)
    assert cachedir.read_entry(path, 100) is None


def test_shipped_program_is_found_by_its_source(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a folder of shipped programs holding one for the source "src"
    entry = Entry((MapDef("counts", 1, 8, 8, 100, 0, "k", "l"),), {"f": MOV_R0 + EXIT},
                  "GPL", 0)
    key = bpf_load.shipped_key("src")
    (tmp_path / f"{key}.bpf").write_bytes(bpf_load.encode(key, entry))
    monkeypatch.setenv(bpf_load.SHIPPED_ENV, str(tmp_path))
    # WHEN it is looked up, THEN it is that entry
    assert bpf_load.shipped_entry("src") == entry
    # AND other source text has none; nor does anything with shipping turned off
    assert bpf_load.shipped_entry("other") is None
    monkeypatch.setenv(bpf_load.SHIPPED_ENV, "")
    assert bpf_load.shipped_entry("src") is None
    # AND a damaged one is refused (the caller compiles)
    monkeypatch.setenv(bpf_load.SHIPPED_ENV, str(tmp_path))
    (tmp_path / f"{key}.bpf").write_bytes(b"BEEBPF1\0" + bytes(40))
    with pytest.raises(EntryError):
        bpf_load.shipped_entry("src")


def test_entries_are_fitted_to_the_options_and_the_host() -> None:
    # GIVEN an entry compiled with default sizes, its perf buffer sized on 2 CPUs
    entry = Entry((MapDef("counts", 1, 8, 8, 100, 0, "k", "l"),
                   MapDef("stacks", 7, 4, 8, 50, 0, "k", "l"),
                   MapDef("announce", 4, 4, 4, 2, 0, "k", "l")), {"f": MOV_R0 + EXIT},
                  "GPL", 0)
    # WHEN it is fitted to options that size "counts" and a host of 7 possible CPUs
    got = bpf_load.fitted(entry, {"counts": 4096, "announce": 99}, 7)
    # THEN "counts" has the size asked, "stacks" its own, the perf buffer one slot per CPU
    # (whatever the sizes say), and nothing else changed
    assert [m.max_entries for m in got.maps] == [4096, 50, 7]
    assert got.funcs == entry.funcs and [m.name for m in got.maps] == [
        "counts", "stacks", "announce"]
    # AND a size a map cannot have is refused
    for bad in (0, -1, 1 << 32):
        with pytest.raises(EntryError):
            bpf_load.fitted(entry, {"counts": bad}, 7)


def test_prune_keeps_the_newest(folder: Path) -> None:
    for i in range(5):
        (folder / f"{i}.bpf").write_bytes(b"")
        os.utime(folder / f"{i}.bpf", (1000 + i, 1000 + i))
    (folder / "other.tbl").write_bytes(b"")
    cachedir.prune(folder, ".bpf", 2)
    assert sorted(p.name for p in folder.iterdir()) == ["3.bpf", "4.bpf", "other.tbl"]


# -- real BPF -------------------------------------------------------------------------

@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache root for this test (also for the bee processes it starts)."""
    root = tmp_path / "cache"
    monkeypatch.setenv(cachedir.ENV, str(root))
    monkeypatch.setenv(bpf_load.SHIPPED_ENV, "")  # no shipped programs: the cache alone
    return root / "bpf"


@pytest.fixture()
def compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts bcc compiles (BPF objects made from C text) in this process."""
    import bcc

    calls: list[int] = []
    real = bcc.BPF.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(bcc.BPF, "__init__", counting)
    yield calls


def sample_briefly(opts: Any) -> tuple[Any, int]:
    """Load a Sampler, sample a busy child for 0.4 s; (its load facts, counts drained)."""
    from bee_record.sampler import Sampler

    s = Sampler(opts)
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        s.add_target(spin.pid)
        s.start()
        time.sleep(0.4)
        got: list[Any] = []
        s.drain(got.append)
        return (s.bpf_from_cache, s.bpf_note), sum(n for c in got if c.pid == spin.pid
                                                   for _, n, _ in c.counts)
    finally:
        spin.kill()
        spin.wait()
        s.stop()
        s.close()


def the_entry(cache: Path) -> Path:
    entries = list(cache.glob("*.bpf"))
    assert len(entries) == 1, entries
    return entries[0]


@pytest.mark.bpf
def test_second_load_runs_no_clang(cache: Path, compiles: list[int]) -> None:
    from bee_record.sampler import SamplerOptions

    opts = SamplerOptions(frequency=199, filter_pids=True)
    # GIVEN a first load, compiled, which writes one entry
    (hit, _), n = sample_briefly(opts)
    assert not hit and compiles == [1] and n > 0
    entry = the_entry(cache)
    # WHEN the same program is loaded again
    (hit, note), n = sample_briefly(opts)
    # THEN bcc compiled nothing, the entry was not rewritten, and the program samples
    assert hit and note == "cache hit" and compiles == [1] and n > 0
    assert the_entry(cache) == entry
    # AND other options load the same entry (one program serves every option set)
    (hit, _), n = sample_briefly(SamplerOptions(frequency=199, filter_pids=True,
                                                counts_size=1000, python=False))
    assert hit and compiles == [1] and n > 0 and the_entry(cache) == entry
    # AND --no-bpf-cache compiles and writes nothing
    (hit, note), n = sample_briefly(SamplerOptions(frequency=199, filter_pids=True,
                                                   bpf_cache=False))
    assert not hit and "bypassed" in note and len(compiles) == 2 and n > 0


def _refused_program(path: Path) -> None:
    """Rewrite the entry with a valid checksum but a program the verifier refuses."""
    key = path.name.removesuffix(bpf_load.SUFFIX)
    e = bpf_load.decode(path.read_bytes(), key)
    funcs = dict(e.funcs, bee_on_cpu=EXIT)  # r0 never set: "R0 !read_ok"
    path.write_bytes(bpf_load.encode(key, Entry(e.maps, funcs, e.license, e.kern_version)))


@pytest.mark.bpf
@pytest.mark.parametrize("damage", ["flip", "truncate", "owner", "mode", "refused"])
def test_damaged_entry_falls_back_and_still_records(cache: Path, compiles: list[int],
                                                    damage: str) -> None:
    from bee_record.sampler import SamplerOptions

    opts = SamplerOptions(frequency=199, filter_pids=True)
    sample_briefly(opts)
    path = the_entry(cache)
    data = bytearray(path.read_bytes())
    # GIVEN the entry damaged
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:len(data) // 3]))
    elif damage == "owner":
        os.chown(path, 65534, 65534)
    elif damage == "mode":
        path.chmod(0o666)
    else:
        _refused_program(path)
    # WHEN loaded again
    (hit, note), n = sample_briefly(opts)
    # THEN it compiled instead, still sampled, and wrote a good entry for the next launch
    assert not hit and note.startswith("compiled:") and n > 0, note
    assert len(compiles) == 2
    (hit, _), n = sample_briefly(opts)
    assert hit and len(compiles) == 2 and n > 0


XZ = ("head -c 3000000 /usr/bin/python3.11 | /usr/bin/xz -6 -T1 -c > /dev/null; "
      "head -c 3000000 /usr/bin/python3.11 | /usr/bin/xz -6 -T1 -c > /dev/null")


def _on_cpu_xz(out: Path) -> None:
    stacks = {k: v for k, v in bee_names(out).items() if any("lzma" in f for f in k)}
    assert sum(stacks.values()) > 50 and rooted(stacks) > 0.8, stacks.most_common(3)


def _off_cpu(out: Path) -> None:
    rec = codec.read(out)
    assert rec.header.weight_unit == "nanoseconds"
    assert sum(s.weight for s in rec.samples) > 0.5e9


def _python(out: Path) -> None:
    rec = codec.read(out)
    with_py = sum(s.count for s in rec.samples if s.python_stack >= 0)
    assert with_py > 50 and rec.python_stacks, with_py


def _tracepoint(out: Path) -> None:
    rec = codec.read(out)
    assert rec.header.events[-1] == "tracepoint:syscalls:sys_enter_write"
    hits = sum(s.count for s in rec.samples if s.event == len(rec.header.events) - 1)
    assert hits >= 100, hits


SCENARIOS = {
    "on-cpu dwarf xz": (["-F", "499"], ["sh", "-c", XZ], _on_cpu_xz),
    "off-cpu": (["--mode", "offcpu"], [sys.executable, "-c",
                                       "import time\nfor _ in range(20): time.sleep(0.05)"],
                _off_cpu),
    "python frames": (["-F", "499"], ["/usr/bin/python3.11", str(SRC / "python_split.py"),
                                      "1.5"], _python),
    "tracepoint": (["-e", "tracepoint:syscalls:sys_enter_write"],
                   ["sh", "-c", "for i in $(seq 200); do echo $i; done > /dev/null"],
                   _tracepoint),
}


@pytest.mark.bpf
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_warm_launch_records_what_a_cold_one_does(cache: Path, tmp_path: Path,
                                                  scenario: str) -> None:
    options, command, check = SCENARIOS[scenario]
    # GIVEN a cold launch (empty cache), which records and writes the entry
    cold = tmp_path / "cold.bee"
    res = run_bee("record", "-q", *options, "-o", cold, "--", *command)
    assert res.returncode == 0, res.stderr
    entry = the_entry(cache)
    os.utime(entry, (1_000_000, 1_000_000))  # a compile would write it anew
    # WHEN the same recording is launched again
    warm = tmp_path / "warm.bee"
    res = run_bee("record", "-q", *options, "-o", warm, "--", *command)
    assert res.returncode == 0, res.stderr
    # THEN it loaded from the cache (nothing compiled, so the entry is untouched)
    assert entry.stat().st_mtime == 1_000_000
    # AND both recordings hold the same kinds of samples
    check(cold)
    check(warm)


def _comparable(entry: Entry) -> tuple[Any, ...]:
    return entry.maps, entry.funcs, entry.license


@pytest.mark.bpf
def test_shipped_program_equals_a_compile_of_the_current_source(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails after a change of bpf/*.c until `make bpf-objects`
    (scripts/build_bpf_objects.py) has rebuilt it."""
    from importlib import resources

    from bee_record.sampler import program_text

    monkeypatch.delenv(bpf_load.SHIPPED_ENV, raising=False)
    # GIVEN the current source, compiled
    src = program_text()
    compiled = bpf_load.compile_entry(bpf_load.import_bcc(), src)
    # THEN the shipped program, fitted to this host's CPUs, is that compile, instruction
    # for instruction
    shipped = bpf_load.shipped_entry(src)
    assert shipped is not None, "no shipped program: run `make bpf-objects`"
    fitted = bpf_load.fitted(shipped, {}, bpf_load._possible_cpus())
    assert _comparable(fitted) == _comparable(compiled), "run `make bpf-objects`"
    # AND no program of another source is shipped
    shipped_files = {p.name for p in resources.files("bee_record.bpf").joinpath(
        "prebuilt").iterdir() if p.name.endswith(bpf_load.SUFFIX)}
    assert shipped_files == {f"{bpf_load.shipped_key(src)}{bpf_load.SUFFIX}"}


@pytest.mark.bpf
def test_a_first_launch_loads_the_shipped_program(cache: Path, compiles: list[int],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from bee_record.sampler import SamplerOptions

    monkeypatch.delenv(bpf_load.SHIPPED_ENV)
    opts = SamplerOptions(filter_pids=True)  # `bee record -- COMMAND` / `-p PID`
    # GIVEN a host whose cache is empty
    # WHEN bee loads the program of a default `bee record -- COMMAND`
    (hit, note), n = sample_briefly(opts)
    # THEN no clang ran, the shipped program sampled, and no cache entry was needed
    assert hit and note == "shipped program" and compiles == [] and n > 0, note
    assert not list(cache.glob("*.bpf"))
    # AND --no-bpf-cache compiles from the source instead
    (hit, note), n = sample_briefly(replace(opts, bpf_cache=False))
    assert not hit and "bypassed" in note and compiles == [1] and n > 0


@pytest.mark.bpf
def test_a_damaged_shipped_program_falls_back_to_a_compile(
        cache: Path, compiles: list[int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from importlib import resources

    from bee_record.sampler import SamplerOptions, program_text

    # GIVEN the shipped program damaged
    opts = SamplerOptions(filter_pids=True)
    key = bpf_load.shipped_key(program_text())
    folder = tmp_path / "shipped"
    folder.mkdir()
    with resources.as_file(resources.files("bee_record.bpf").joinpath(
            "prebuilt", f"{key}{bpf_load.SUFFIX}")) as original:
        shutil.copy(original, folder)
    damaged = folder / f"{key}{bpf_load.SUFFIX}"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x10
    damaged.write_bytes(bytes(data))
    monkeypatch.setenv(bpf_load.SHIPPED_ENV, str(folder))
    # WHEN it is loaded
    (hit, note), n = sample_briefly(opts)
    # THEN bcc compiled instead, it sampled, and the compile went to the cache as usual
    assert not hit and "shipped program refused" in note and compiles == [1] and n > 0, note
    assert len(list(cache.glob("*.bpf"))) == 1


@pytest.mark.bpf
@pytest.mark.parametrize("options", [
    [], ["-F", "999"], ["--mode", "offcpu"], ["--mode", "wall", "-F", "49"],
    ["--time-resolution", "10"], ["--mode", "offcpu", "--min-block", "100"],
    ["--unwind", "fp", "--no-python"], ["--user-only", "--counts-size", "5000"],
    ["--kernel-only", "--include-idle"], ["--stack-storage-size", "2048"],
    ["-e", "tracepoint:sched:sched_process_exec",
     "-e", "uprobe:/usr/lib/x86_64-linux-gnu/libc.so.6:clock_nanosleep"]], ids=" ".join)
@pytest.mark.parametrize("target", ["system", "command"])
def test_bee_records_first_launch_options_without_clang(cache: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        options: list[str],
                                                        target: str) -> None:
    """One shipped program serves every option set `bee record` makes of a command line."""
    monkeypatch.delenv(bpf_load.SHIPPED_ENV)
    # GIVEN a host whose cache is empty
    out = tmp_path / "first.bee"
    rest = ["-d", "0.5"] if target == "system" else ["--", "sleep", "0.5"]
    # WHEN bee records with these options
    res = run_bee("record", "-q", *options, "-o", out, *rest)
    # THEN it recorded, and wrote no cache entry: no clang ran (a compile writes one)
    assert res.returncode == 0, res.stderr
    assert codec.read(out).header.duration_ns > 0
    assert not list(cache.glob("*.bpf"))
    if options:
        return
    # AND (checked once) the same command line with shipping turned off compiles, and
    # writes its entry: the check above would see a compile
    monkeypatch.setenv(bpf_load.SHIPPED_ENV, "")
    assert run_bee("record", "-q", *options, "-o", out, *rest).returncode == 0
    assert len(list(cache.glob("*.bpf"))) == 1

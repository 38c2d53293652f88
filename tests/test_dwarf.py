"""bee_report.dwarf.lines against binutils addr2line 2.40 on fixtures built here and on libc.

The fixtures under tests/fixtures/dwarf/ are compiled at test time (C and C++ with gcc -O2,
Rust with rustc -C opt-level=2; DWARF 4 and 5, compressed with -gz, PIE and -no-pie) and
symbolized at random addresses inside FUNC symbols, both by ``DebugInfo`` and by
``addr2line -a -f -i -C -e``.

Two properties of addr2line 2.40 are taken into account, both printed with the results:

* it remembers a function's name on the first lookup that lands in it (``bfd/dwarf2.c``:
  a C++/Rust DWARF function without linkage name then takes the ELF symbol's name), so its
  answers depend on the order of the input. The oracle is asked every address twice and
  its second answers are used: the settled state that ``DebugInfo`` implements.
* for DWARF 5 it reports line rows that precede the first DW_LNS_set_file of a sequence
  under file 0 instead of file 1 (the DWARF 5 default). Where only the innermost file
  differs and llvm-symbolizer agrees with us, the row counts as agreeing (and is counted).
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bee_contract.errors import DebugInfoError
from bee_report.dwarf import lines as dwarf_lines
from bee_report.dwarf import tables as cache_tables
from bee_report.dwarf.lines import DebugInfo, SourceFrame
from bee_report.find.cachedir import source_key

FIXTURES = Path(__file__).parent / "fixtures" / "dwarf"
LIBC = Path("/usr/lib/x86_64-linux-gnu/libc.so.6")
OUTER_MIN, INNER_MIN, CHAIN_MIN = 0.99, 0.97, 0.95
Chain = tuple[tuple[str | None, str | None, int | None], ...]
_LOC = re.compile(r"^(.*):(\?|\d+)(?: \(discriminator \d+\))?$")
_ADDR = re.compile(r"^0x[0-9a-f]+$")


# ----------------------------------------------------------------------------- helpers


def _run(cmd: list[str], stdin: str = "") -> str:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True).stdout


def func_symbols(path: Path) -> list[tuple[int, int, str]]:
    """(start, size, name) of the sized FUNC symbols, from ``readelf -sW``."""
    seen: dict[tuple[int, int], str] = {}
    for line in _run(["readelf", "-sW", str(path)]).splitlines():
        p = line.split()
        if len(p) >= 8 and p[3] == "FUNC" and p[6] != "UND" and p[0].endswith(":"):
            size = int(p[2], 16) if p[2].startswith("0x") else int(p[2])
            if size > 0:
                seen.setdefault((int(p[1], 16), size), p[7])
    return sorted((start, size, name) for (start, size), name in seen.items())


def random_addresses(path: Path, count: int, seed: int = 0) -> list[int]:
    """``count`` addresses inside FUNC symbols: a random symbol, a random offset in it."""
    syms = func_symbols(path)
    rng = random.Random(seed)
    picks = (rng.choice(syms) for _ in range(count))
    return [start + rng.randrange(size) for start, size, _name in picks]


def addr2line(path: Path, addrs: list[int], demangle: bool = True) -> dict[int, Chain]:
    """addr2line's settled answers (see the module docstring): it is first asked the start
    of every function symbol but ``.cold`` parts, then each address twice; the second
    answers are kept."""
    cold = re.compile(r"\.cold(\.\d+)?$")
    prime = sorted({start for start, _size, name in func_symbols(path) if not cold.search(name)})
    seq = prime + addrs + addrs
    flags = ["-a", "-f", "-i"] + (["-C"] if demangle else [])
    out = _run(["addr2line", *flags, "-e", str(path)], "".join(f"{a:#x}\n" for a in seq))
    lines, i, answers = out.splitlines(), 0, []
    for a in seq:
        assert int(lines[i], 16) == a, (lines[i], hex(a))
        i, frames = i + 1, []
        while i < len(lines) and not _ADDR.match(lines[i]):
            m = _LOC.match(lines[i + 1])
            assert m, lines[i + 1]
            file, line = m.group(1), m.group(2)
            frames.append(
                (
                    None if lines[i] == "??" else lines[i],
                    None if file == "??" else file,
                    None if line in ("?", "0") else int(line),
                )
            )
            i += 2
        answers.append(() if frames == [(None, None, None)] else tuple(frames))
    return dict(zip(addrs, answers[len(prime) + len(addrs) :], strict=True))


def llvm_innermost(path: Path, addrs: list[int]) -> dict[int, tuple[str | None, int | None]]:
    """llvm-symbolizer's innermost file:line of each address."""
    out = _run(
        ["llvm-symbolizer", f"--obj={path}", "--no-inlines", "--functions=none"],
        "".join(f"{a:#x}\n" for a in addrs),
    )
    res = {}
    for a, block in zip(addrs, out.split("\n\n"), strict=False):
        file, line, _col = (block.strip().splitlines() or ["??:0:0"])[0].rsplit(":", 2)
        res[a] = (None if file == "??" else file, None if line == "0" else int(line))
    return res


def as_chain(frames: tuple[SourceFrame, ...]) -> Chain:
    return tuple((f.function, f.file, f.line) for f in frames)


@dataclass(frozen=True)
class Agreement:
    outer: float
    inner: float
    chains: float
    dwarf5_file_bug: int
    mismatches: list[str]

    def report(self, what: str) -> str:
        head = (
            f"{what}: outer function {self.outer:.4f}, innermost file:line {self.inner:.4f}, "
            f"whole chain {self.chains:.4f} (addr2line DWARF 5 file-0 rows forgiven: "
            f"{self.dwarf5_file_bug}); {len(self.mismatches)} mismatches"
        )
        return "\n".join([head, *self.mismatches[:15]])


def agreement(
    path: Path, addrs: list[int], got: dict[int, Chain], demangle: bool = True
) -> Agreement:
    """Compare ``got`` with addr2line (and llvm-symbolizer for innermost-file disputes)."""
    want = addr2line(path, addrs, demangle)
    disputed = [
        a
        for a in addrs
        if want[a] and got[a] and want[a][0] != got[a][0] and want[a][0][::2] == got[a][0][::2]
    ]
    llvm = llvm_innermost(path, disputed) if disputed else {}
    forgiven = {a for a in disputed if llvm[a] == got[a][0][1:]}
    outer = inner = chains = 0
    mismatches = []
    for a in addrs:
        w, g = want[a], got[a]
        if a in forgiven:
            w = ((w[0][0], *g[0][1:]), *w[1:])
        outer += (w[-1][0] if w else None) == (g[-1][0] if g else None)
        inner += (w[0][1:] if w else None) == (g[0][1:] if g else None)
        chains += w == g
        if w != g:
            mismatches.append(f"  {a:#x}\n    addr2line {w}\n    bee       {g}")
    n = len(addrs)
    return Agreement(outer / n, inner / n, chains / n, len(forgiven), mismatches)


def check(path: Path, count: int, demangle: Callable[[str], str] | None = None) -> Agreement:
    addrs = random_addresses(path, count)
    info = DebugInfo.load(path, None, None, demangle=demangle)
    assert info is not None
    got = {a: as_chain(f) for a, f in info.lookup_many(addrs).items()}
    result = agreement(path, addrs, got, demangle is None)
    print(result.report(path.name))
    return result


def build_id_of(path: Path) -> str:
    """The NT_GNU_BUILD_ID of ``path`` as lowercase hex (``readelf -n``)."""
    m = re.search(r"Build ID: ([0-9a-f]+)", _run(["readelf", "-n", str(path)]))
    assert m, f"{path} has no build-id"
    return m.group(1)


def libc_debug_file() -> Path | None:
    """The libc6-dbg debug file of the installed libc, found by build-id."""
    if not LIBC.exists() or shutil.which("readelf") is None:
        return None
    build_id = build_id_of(LIBC)
    path = Path("/usr/lib/debug/.build-id") / build_id[:2] / f"{build_id[2:]}.debug"
    return path if path.exists() else None


# ---------------------------------------------------------------------------- fixtures

BUILDS = {
    "c-dwarf4": ["gcc", "-O2", "-g", "-gdwarf-4", "inline.c"],
    "c-dwarf5-gz": ["gcc", "-O2", "-g", "-gdwarf-5", "-gz", "inline.c"],
    "c-dwarf5-nopie": ["gcc", "-O2", "-g", "-gdwarf-5", "-no-pie", "inline.c"],
    "cpp-dwarf5": ["g++", "-O2", "-g", "-gdwarf-5", "templates.cpp"],
    "cpp-dwarf4-gz-nopie": ["g++", "-O2", "-g", "-gdwarf-4", "-gz", "-no-pie", "templates.cpp"],
    "rust-dwarf4": ["rustc", "-g", "-C", "opt-level=2", "generics.rs"],
    "rust-dwarf5": ["rustc", "-g", "-C", "opt-level=2", "-C", "dwarf-version=5", "generics.rs"],
}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Compile a fixture of BUILDS on first use (skip when the compiler is missing)."""
    out_dir = tmp_path_factory.mktemp("dwarf-fixtures")
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            cmd = BUILDS[name]
            if shutil.which(cmd[0]) is None:
                pytest.skip(f"{cmd[0]} is not installed")
            out = out_dir / name
            source = str(FIXTURES / cmd[-1])
            proc = subprocess.run(
                [*cmd[:-1], "-o", str(out), source], capture_output=True, text=True, cwd=out_dir
            )
            if proc.returncode != 0:
                pytest.skip(f"{name}: {' '.join(cmd)} failed: {proc.stderr.strip()[:200]}")
            done[name] = out
        return done[name]

    return get


# -------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_fixture_matches_addr2line(built: Callable[[str], Path], name: str) -> None:
    # GIVEN a fixture binary with inlined static/template/generic functions
    path = built(name)
    # WHEN 1500 random addresses inside its functions are symbolized by both
    result = check(path, 1500)
    # THEN outermost names, innermost file:line and whole inline chains agree
    assert result.outer >= OUTER_MIN, result.report(name)
    assert result.inner >= INNER_MIN, result.report(name)
    assert result.chains >= CHAIN_MIN, result.report(name)


def test_fixture_has_inlined_frames(built: Callable[[str], Path]) -> None:
    # GIVEN the C fixture, where gcc -O2 inlines sq() into dist2() into closest()
    path = built("c-dwarf5-gz")
    info = DebugInfo.load(path, None, None)
    assert info is not None
    # WHEN every address of the binary's functions is looked up
    chains = [info.lookup(a) for s, size, _ in func_symbols(path) for a in range(s, s + size)]
    deep = [c for c in chains if len(c) >= 3]
    # THEN some chains are 3 deep, innermost first, only the last frame not inlined
    assert deep, "no inline chain of depth 3 found"
    assert any(c[0].function == "sq" and c[-1].function == "closest" for c in deep)
    for chain in deep:
        assert [f.inlined for f in chain] == [True] * (len(chain) - 1) + [False]


def test_mangled_names_without_demangler(built: Callable[[str], Path]) -> None:
    # GIVEN the C++ fixture and an identity demangler
    path = built("cpp-dwarf5")
    # WHEN it is compared with addr2line without -C
    result = check(path, 800, demangle=str)
    # THEN the raw (linkage) names agree as well
    assert result.outer >= OUTER_MIN, result.report("cpp-dwarf5 raw")
    assert result.chains >= CHAIN_MIN, result.report("cpp-dwarf5 raw")


def test_libc_matches_addr2line() -> None:
    # GIVEN the distribution's libc debug file (libc6-dbg, found by build-id)
    path = libc_debug_file()
    if path is None:
        pytest.skip("libc6-dbg debug file for libc.so.6 not installed")
    # WHEN 2000 random addresses inside libc functions are symbolized by both
    result = check(path, 2000)
    # THEN the agreement targets hold there too
    assert result.outer >= OUTER_MIN, result.report("libc")
    assert result.inner >= INNER_MIN, result.report("libc")
    assert result.chains >= CHAIN_MIN, result.report("libc")


def test_function_name_and_lookup_many_agree_with_lookup(built: Callable[[str], Path]) -> None:
    # GIVEN the C++ fixture
    path = built("cpp-dwarf5")
    info = DebugInfo.load(path, None, None)
    assert info is not None
    addrs = [*random_addresses(path, 300, seed=7), 0, 1 << 40]
    calls: list[int] = []
    # WHEN symbolized in bulk, one by one, and by name only
    many = info.lookup_many(addrs, progress=calls.append)
    # THEN all three agree, unknown addresses give (), and progress reached the end
    fresh = DebugInfo.load(path, None, None)
    assert fresh is not None
    for a in addrs:
        frames = fresh.lookup(a)
        assert many[a] == frames
        assert fresh.function_name(a) == (frames[-1].function if frames else None)
    assert many[0] == () and many[1 << 40] == ()
    assert calls and calls[-1] == len(addrs)


# ------------------------------------------------------------------------------ cache


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "dwarf").glob("*.beedwarf")) if (cache / "dwarf").exists() else []


def test_warm_cache_gives_identical_results(built: Callable[[str], Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an empty cache directory and the Rust fixture
    path = built("rust-dwarf4")
    build_id = build_id_of(path)
    addrs = random_addresses(path, 500, seed=3)
    cold = DebugInfo.load(path, build_id, tmp_path)
    assert cold is not None
    # WHEN it is loaded again, from the entry that the first load wrote
    (entry,) = _entries(tmp_path)
    def no_build(_: Path) -> None:
        raise AssertionError("the warm load must not rebuild")

    monkeypatch.setattr(dwarf_lines, "build", no_build)
    warm = DebugInfo.load(path, build_id, tmp_path)
    # THEN the entry is named by build-id, source file and format version, and answers are
    # identical
    assert entry.name == f"{build_id}.{source_key(path)}.v{cache_tables.FORMAT_VERSION}.beedwarf"
    assert warm is not None
    assert warm.lookup_many(addrs) == cold.lookup_many(addrs)


def test_contradicted_build_id_is_not_cached(built: Callable[[str], Path], tmp_path: Path) -> None:
    # GIVEN a debug file whose own build-id note is not the build-id it is asked for
    path = built("c-dwarf4")
    # WHEN it is loaded with a cache directory
    info = DebugInfo.load(path, "ab12cd", tmp_path)
    # THEN it symbolizes but is not filed under the wrong build-id
    assert info is not None
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "other-build-id", "empty", "garbage"])
def test_damaged_cache_is_rebuilt(
    built: Callable[[str], Path], tmp_path: Path, damage: str
) -> None:
    # GIVEN a cache entry for the C fixture, then damaged
    path = built("c-dwarf4")
    build_id = build_id_of(path)
    addrs = random_addresses(path, 200, seed=5)
    first = DebugInfo.load(path, build_id, tmp_path)
    assert first is not None
    key = source_key(path)
    assert key is not None
    expected = first.lookup_many(addrs)
    (entry,) = _entries(tmp_path)
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        for i in range(300, len(data), 997):
            data[i] ^= 0x5A
    elif damage == "other-build-id":
        other_path = built("c-dwarf5-nopie")
        other_id, other_key = build_id_of(other_path), source_key(other_path)
        assert other_id is not None and other_key is not None
        assert DebugInfo.load(other_path, other_id, tmp_path) is not None
        data = bytearray(cache_tables.cache_file(tmp_path, other_id, other_key).read_bytes())
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(random.Random(1).randbytes(5000))
    entry.write_bytes(bytes(data))
    assert cache_tables.load(tmp_path, build_id, key) is None
    # WHEN it is loaded from that cache
    again = DebugInfo.load(path, build_id, tmp_path)
    # THEN the damage was detected, the answers are right and the entry is valid again
    assert again is not None
    assert again.lookup_many(addrs) == expected
    assert cache_tables.load(tmp_path, build_id, key) is not None
    assert not list((tmp_path / "dwarf").glob("*.tmp"))


@pytest.mark.parametrize("build_id", ["../../etc", "ABCDEF", "a", "xyz0", "abcd\n", "", None])
def test_unsafe_build_id_is_not_cached(
    built: Callable[[str], Path], tmp_path: Path, build_id: str | None
) -> None:
    # GIVEN a build-id that is not lowercase hex of 2..128 digits
    path = built("c-dwarf4")
    # WHEN the fixture is loaded with a cache directory
    info = DebugInfo.load(path, build_id, tmp_path / "cache")
    # THEN it still symbolizes, but nothing is written anywhere
    assert info is not None and info.lookup(func_symbols(path)[0][0])
    assert not (tmp_path / "cache").exists()
    assert not list(tmp_path.parent.glob("etc*"))


# ------------------------------------------------------------------------ bad inputs


def test_file_without_dwarf_gives_none(built: Callable[[str], Path], tmp_path: Path) -> None:
    # GIVEN the C fixture with its debug sections stripped
    stripped = tmp_path / "stripped"
    subprocess.run(
        ["strip", "--strip-debug", "-o", str(stripped), str(built("c-dwarf4"))], check=True
    )
    # WHEN it is loaded
    # THEN there is no debug info to use
    assert DebugInfo.load(stripped, "aa", tmp_path) is None


@pytest.mark.parametrize(
    "content",
    [b"", b"not an elf at all", b"\x7fELF\x02\x01\x01" + bytes(9), "truncated", "bad-dwarf"],
)
def test_malformed_file_raises_debug_info_error(
    built: Callable[[str], Path], tmp_path: Path, content: bytes | str
) -> None:
    # GIVEN a file that is no ELF, a truncated ELF, or an ELF whose .debug_info is garbage
    bad = tmp_path / "bad"
    if content == "truncated":
        bad.write_bytes(built("c-dwarf4").read_bytes()[:3000])
    elif content == "bad-dwarf":
        data = bytearray(built("c-dwarf4").read_bytes())
        info = next(
            line.split()
            for line in _run(["readelf", "-SW", str(built("c-dwarf4"))]).splitlines()
            if " .debug_info " in line
        )
        off = int(info[info.index(".debug_info") + 3], 16)
        data[off : off + 64] = b"\xff" * 64
        bad.write_bytes(bytes(data))
    else:
        assert isinstance(content, bytes)
        bad.write_bytes(content)
    # WHEN it is loaded
    # THEN the outcome is None or one DebugInfoError line naming the file, never another error
    try:
        result = DebugInfo.load(bad, "abcd", tmp_path)
    except DebugInfoError as e:
        assert str(bad) in str(e) and "\n" not in str(e)
    else:
        assert result is None or isinstance(result.lookup(0x1000), tuple)


def test_missing_file_raises_debug_info_error(tmp_path: Path) -> None:
    # GIVEN a path that does not exist
    # WHEN it is loaded  THEN the error is a DebugInfoError naming it
    with pytest.raises(DebugInfoError, match="missing"):
        DebugInfo.load(tmp_path / "missing", None, None)

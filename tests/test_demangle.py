"""Tests for bee_report.demangle.binutils: agreement with binutils 2.40 and robustness.

The reference is binutils itself: ``c++filt -i`` (non-verbose, the mode ``addr2line -C``
and ``nm -C`` use), ``nm -C`` and ``addr2line -f -C`` run on symbols of fixtures compiled
here from tests/fixtures/demangle/ with g++ -O2 and rustc (legacy and v0 mangling).
"""

from __future__ import annotations

import shutil
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bee_report.demangle import binutils as dm
from bee_report.demangle.binutils import demangle

FIXTURES = Path(__file__).parent / "fixtures" / "demangle"
CXX_FEATURES = [
    "[clone .cold]", "[clone .isra.0]", "[clone .constprop.0]", "[clone .part.0]",
    "{lambda(int)#1}", "std::function<int (int)>", "vtable for outer::inner::Circle",
    "non-virtual thunk to outer::inner::Square", "guard variable for counter()::last",
    "(anonymous namespace)::maybe_throw(int)", "[abi:cxx11]", "outer::inner::Matrix<int, 3>",
    'operator"" _usd(unsigned long long)', "std::cout@GLIBCXX_3.4",
]  # fmt: skip
RUST_FEATURES = {
    "legacy": ["{{closure}}", "rust_fixture::type_tag", "<rust_fixture::Circle as rust_fixture::"],
    "v0": [
        "rust_fixture::grüße", "<rust_fixture::Über<u16>>::größe", "rust_fixture::東京",
        "signed_const::<-5>", "'\\u{3bb}'",
        "type_tag::<for<'a> fn(&'a str) -> usize>", 'extern "C-unwind" fn()',
        "dyn for<'a> core::ops::function::Fn<(&'a u8,), Output = u32>", "{closure#0}",
        "<rust_fixture::Circle as rust_fixture::Shape>::area", "Grid<3, 4>",
        "type_tag::<(i8, (u64,), [bool; 2], ())>", "big_const::<0x",
    ],
}  # fmt: skip


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _run(*args: str, stdin: str = "") -> str:
    proc = subprocess.run(
        args, input=stdin, capture_output=True, encoding="utf-8", errors="surrogateescape"
    )
    assert proc.returncode == 0, f"{args[0]} failed: {proc.stderr}"
    return proc.stdout


def _symbols(binary: Path) -> list[str]:
    nm = _tool("nm")
    names = _run(nm, "-p", "--format=just-symbols", str(binary)).split()
    names += _run(nm, "-pD", "--format=just-symbols", str(binary)).split()
    return sorted(set(names))


def _cxxfilt(names: list[str]) -> list[str]:
    """Demangle ``names`` with one batch ``c++filt -i`` process."""
    out = _run(_tool("c++filt"), "-i", stdin="".join(n + "\n" for n in names))
    lines = out.split("\n")[: len(names)]
    assert len(lines) == len(names)
    return lines


def _mismatches(names: list[str], reference: list[str]) -> list[str]:
    return [
        f"{name}\n    demangle(): {demangle(name)}\n    reference:  {ref}"
        for name, ref in zip(names, reference, strict=True)
        if demangle(name) != ref
    ]


def _edge_cases(file_name: str) -> list[str]:
    lines = (FIXTURES / file_name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    dm._demangle_cached.cache_clear()
    dm._load_cxxfilt.cache_clear()
    yield
    dm._demangle_cached.cache_clear()
    dm._load_cxxfilt.cache_clear()


@pytest.fixture(scope="module")
def cxx_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed")
    out = tmp_path_factory.mktemp("cxx") / "cxx_fixture"
    _run(gxx, "-std=c++17", "-O2", "-o", str(out), str(FIXTURES / "cxx_fixture.cpp"))
    return out


@pytest.fixture(scope="module", params=["legacy", "v0"])
def rust_binary(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rustc = shutil.which("rustc")
    if rustc is None:
        pytest.skip("rustc is not installed")
    out = tmp_path_factory.mktemp("rust") / f"rust_fixture_{request.param}"
    base = [rustc, "--edition=2021", "-C", "opt-level=1", "-C", "strip=debuginfo", "-o", str(out)]
    flag = ["-C", f"symbol-mangling-version={request.param}"]
    src = str(FIXTURES / "rust_fixture.rs")
    if subprocess.run([*base, *flag, src], capture_output=True).returncode != 0:
        # Recent stable rustc only accepts an explicit `legacy` with -Z unstable-options,
        # but still uses legacy mangling by default (the coverage checks verify this).
        assert request.param == "legacy"
        _run(*base, src)
    return out


def test_cxx_fixture_matches_cxxfilt(cxx_binary: Path) -> None:
    # GIVEN every symbol of the g++ -O2 fixture (templates, lambdas, clones, versions, ...)
    names = _symbols(cxx_binary)
    # WHEN binutils and demangle() both demangle them
    reference = _cxxfilt(names)
    mismatches = _mismatches(names, reference)
    # THEN the fixture really exercised the features, and demangle() agrees on all of them
    print(f"C++: {len(names) - len(mismatches)}/{len(names)} agree", *mismatches, sep="\n")
    missing = [f for f in CXX_FEATURES if not any(f in ref for ref in reference)]
    assert not missing, f"fixture lacks {missing}"
    assert not mismatches, "\n".join(mismatches)


def test_rust_fixture_matches_cxxfilt(rust_binary: Path) -> None:
    # GIVEN every symbol of a rustc fixture (legacy or v0 mangling for the fixture crate)
    scheme = rust_binary.name.rsplit("_", 1)[1]
    names = _symbols(rust_binary)
    # WHEN binutils and demangle() both demangle them
    reference = _cxxfilt(names)
    mismatches = _mismatches(names, reference)
    # THEN coverage is real and agreement is 100% for legacy, at least 99% for v0
    rate = 1 - len(mismatches) / len(names)
    print(f"Rust {scheme}: {rate:.2%} of {len(names)} agree", *mismatches, sep="\n")
    own = [
        n
        for n in names
        if "rust_fixture" in n and n.startswith("_ZN" if scheme == "legacy" else "_R")
    ]
    assert len(own) >= 20, f"expected {scheme} symbols of the fixture crate, got {own}"
    missing = [f for f in RUST_FEATURES[scheme] if not any(f in ref for ref in reference)]
    assert not missing, f"fixture lacks {missing}"
    assert rate >= (1.0 if scheme == "legacy" else 0.99), "\n".join(mismatches)


@pytest.mark.parametrize("file_name", ["edge_cases_demangled.txt", "edge_cases_unchanged.txt"])
def test_edge_cases_match_cxxfilt(file_name: str) -> None:
    # GIVEN hand-written symbols probing libiberty's quirks and limits
    names = _edge_cases(file_name)
    # WHEN c++filt -i demangles them in one batch
    reference = _cxxfilt(names)
    # THEN each file holds what its name says, and demangle() prints the same text
    changed = [n != r for n, r in zip(names, reference, strict=True)]
    expected_changed = file_name == "edge_cases_demangled.txt"
    wrong = [n for n, c in zip(names, changed, strict=True) if c != expected_changed]
    assert not wrong, f"misfiled in {file_name}: {wrong}"
    mismatches = _mismatches(names, reference)
    assert not mismatches, "\n".join(mismatches)


def _lone_function_symbols(binary: Path) -> dict[str, str]:
    """Map address -> name for function symbols that are alone at their address."""
    by_addr: dict[str, list[tuple[str, str]]] = {}
    for line in _run(_tool("nm"), "-p", "--defined-only", str(binary)).splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            by_addr.setdefault(parts[0], []).append((parts[1], parts[2]))
    return {
        addr: syms[0][1]
        for addr, syms in by_addr.items()
        if len(syms) == 1 and syms[0][0] in "tTW" and int(addr, 16) > 0
    }


def _check_addr2line(binary: Path) -> None:
    # GIVEN the addresses of functions (no debug info: addr2line uses the symbol table)
    symbols = _lone_function_symbols(binary)
    addrs = sorted(symbols)
    # WHEN addr2line -f -C names the function at each address
    out = _run(_tool("addr2line"), "-f", "-C", "-e", str(binary), stdin="\n".join(addrs))
    functions = out.splitlines()[0::2]
    # THEN demangle() of the raw symbol gives the same name
    assert len(functions) == len(addrs) > 50
    mismatches = _mismatches([symbols[a] for a in addrs], functions)
    assert not mismatches, "\n".join(mismatches)


def test_addr2line_agrees_on_cxx_functions(cxx_binary: Path) -> None:
    _check_addr2line(cxx_binary)


def test_addr2line_agrees_on_rust_functions(rust_binary: Path) -> None:
    _check_addr2line(rust_binary)


def test_leading_dots_and_at_suffixes_match_nm(tmp_path: Path) -> None:
    # GIVEN an object whose symbols carry '.'/'$' prefixes and '@' suffixes
    gas = _tool("as")
    obj = tmp_path / "affixes.o"
    _run(gas, "-o", str(obj), str(FIXTURES / "affixes.s"))
    # WHEN nm lists them raw and demangled (bfd_demangle, as addr2line -C uses)
    nm = _tool("nm")
    raw = [line[19:] for line in _run(nm, "-p", str(obj)).splitlines()]
    demangled = [line[19:] for line in _run(nm, "-pC", str(obj)).splitlines()]
    # THEN demangle() sets the affixes aside and restores them exactly like bfd
    assert "..$g()" in demangled and "k()@frob" in demangled
    mismatches = _mismatches(raw, demangled)
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize(
    ("mangled", "expected"),
    [
        ("_ZN3foo3barEv.cold", "foo::bar() [clone .cold]"),
        ("_ZN3foo3barEv.constprop.0.isra.0", "foo::bar() [clone .constprop.0] [clone .isra.0]"),
        (
            "_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h0123456789abcdefE",
            "std::rt::lang_start::{{closure}}",
        ),
        ("_RNCNvCs1234_7mycrate3foo0", "mycrate::foo::{closure#0}"),
        ("_ZSt4cout@GLIBCXX_3.4", "std::cout@GLIBCXX_3.4"),
        ("main.cold", "main.cold"),
        ("", ""),
    ],
)
def test_known_names(mangled: str, expected: str) -> None:
    # GIVEN a symbol whose binutils rendering is known
    # WHEN it is demangled
    result = demangle(mangled)
    # THEN the text is exactly what addr2line -C prints
    assert result == expected


def test_without_cxxfilt_cxx_names_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN cxxfilt cannot be imported
    monkeypatch.setitem(sys.modules, "cxxfilt", None)
    # WHEN C++ and Rust names are demangled
    cxx, rust = demangle("_ZN3foo3barEv"), demangle("_RNvCs1234_7mycrate3foo")
    # THEN C++ falls back to the raw name and Rust (pure Python) still works
    assert (cxx, rust) == ("_ZN3foo3barEv", "mycrate::foo")


def test_without_libstdcxx_cxx_names_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN cxxfilt imports but could not load libstdc++ (its deferred-error demangler)
    import cxxfilt

    broken = cxxfilt.DeferedErrorDemangler(cxxfilt.LibraryNotFound("no libstdc++"))
    monkeypatch.setattr(cxxfilt, "default_demangler", broken)
    # WHEN a C++ name is demangled
    result = demangle("_ZN3foo3barEv.cold")
    # THEN nothing raises and the name comes back unchanged
    assert result == "_ZN3foo3barEv.cold"


def _cxx_doubling_chain(levels: int) -> str:
    """Function pointer types whose parameters reuse the previous type twice."""
    digits = string.digits + string.ascii_uppercase
    parts, sub = ["PFvvE"], 1
    for _ in range(levels):
        seq, n = "", sub - 1
        while True:
            seq, n = digits[n % 36] + seq, n // 36
            if not n:
                break
        parts.append(f"PFvS{seq}_S{seq}_E")
        sub += 2
    return "_Z1f" + "".join(parts)


def test_exponential_cxx_name_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a 400-byte C++ name that expands to ~2**40 characters, and a short helper timeout
    monkeypatch.setattr(dm, "SANDBOX_TIMEOUT", 0.3)
    hostile, benign = _cxx_doubling_chain(40), _cxx_doubling_chain(6)
    assert dm._is_risky(hostile) and dm._is_risky(benign)
    # WHEN it is demangled, followed by a benign risky name
    start = time.monotonic()
    result = demangle(hostile)
    elapsed = time.monotonic() - start
    # THEN it is returned unchanged quickly, and the restarted helper still demangles
    assert result == hostile
    assert elapsed < 10
    assert demangle(benign).startswith("f(void (*)(), void (*)(void (*)(), void (*)()),")


def test_risky_cxx_names_demangle_like_in_process() -> None:
    # GIVEN names that go through the helper process
    names = [_cxx_doubling_chain(n) for n in (6, 8)] + ["_ZN5outer10count_argsIJiRA4_KcdEEEmDpOT_"]
    assert all(dm._is_risky(n) for n in names)
    in_process = dm._load_cxxfilt()
    assert in_process is not None
    # WHEN demangle() handles them
    results = [demangle(n) for n in names]
    # THEN they match libstdc++ called directly
    assert results == [in_process(n.encode()).decode() for n in names]


def test_unavailable_helper_leaves_risky_names_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a helper process that cannot be started
    monkeypatch.setattr(dm, "_SANDBOX", dm._Sandbox())
    monkeypatch.setattr(sys, "executable", "")
    risky = _cxx_doubling_chain(6)
    # WHEN a risky and a plain C++ name are demangled
    results = demangle(risky), demangle("_ZN3foo3barEv")
    # THEN the risky one is unchanged and the plain one is still demangled in-process
    assert results == (risky, "foo::bar()")


def _b62_backref(pos: int) -> str:
    digits = string.digits + string.ascii_lowercase + string.ascii_uppercase
    if pos == 0:
        return "B_"
    n, out = pos - 1, ""
    while True:
        out, n = digits[n % 62] + out, n // 62
        if not n:
            return f"B{out}_"


def _v0_doubling_chain(levels: int) -> str:
    """Generic args where each tuple type back-references the previous type twice."""
    body, last = "INvC1a1fh", len("INvC1a1f")
    for _ in range(levels):
        ref = _b62_backref(last)
        last = len(body)
        body += f"T{ref}{ref}E"
    return f"_R{body}E"


def test_exponential_rust_backrefs_are_cut_off() -> None:
    # GIVEN a v0 name whose back-references double the output 64 times (and a small one)
    assert demangle(_v0_doubling_chain(2)) == "a::f::<u8, (u8, u8), ((u8, u8), (u8, u8))>"
    hostile = _v0_doubling_chain(64)
    # WHEN it is demangled
    start = time.monotonic()
    result = demangle(hostile)
    # THEN the work budget stops it quickly and the name is returned unchanged
    assert result == hostile
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    "hostile",
    [
        "_RINvC1a1f" + "R" * 20000 + "hE",  # nesting far past the depth limit
        "_RINvC1a1f" + "I" * 20000 + "E",
        "_RINvC1a1fFGzzzzzzzzzz_EuE",  # a binder with ~8e17 lifetimes
        "_RNvC1au2000_" + "a" * 2000,  # punycode beyond the decoder's cap
        "_RNvC1a" + "9" * 5000 + "_x",  # a huge identifier length
        "_ZN" + "3abc" * 30000 + "17h0123456789abcdefE",  # over the 64 KiB cap
        "_Z1fv\x00junk",
        "_Z1f\udcff",
        "_ZN3foo\n3barE",
    ],
)
def test_hostile_names_are_returned_unchanged(hostile: str) -> None:
    # GIVEN a malformed or oversized name
    # WHEN it is demangled
    start = time.monotonic()
    result = demangle(hostile)
    # THEN it comes back unchanged, fast, without RecursionError
    assert result == hostile
    assert time.monotonic() - start < 2


def test_cache_is_bounded_and_used() -> None:
    # GIVEN an empty cache
    # WHEN the same name is demangled twice
    demangle("_ZN3foo3barEv")
    demangle("_ZN3foo3barEv")
    info = dm._demangle_cached.cache_info()
    # THEN the second call is a hit and the cache has a finite size
    assert (info.hits, info.misses) == (1, 1)
    assert info.maxsize == dm.CACHE_SIZE


MANGLED_CHARS = string.ascii_letters + string.digits + "_$.@:"
V0_TOKENS = [
    "B_", "B0_", "B5_", "I", "E", "N", "v", "C", "s_", "3foo", "u3abc", "u5ab_c", "K", "j",
    "p", "G0_", "F", "D", "L_", "L0_", "R", "Q", "T", "Y", "M", "X", "h", "1_", "n", "c41_",
]  # fmt: skip
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.text())
def test_arbitrary_text_never_raises(name: str) -> None:
    # GIVEN any string / WHEN demangled / THEN a string comes back without an exception
    assert isinstance(demangle(name), str)


@PROPERTY
@given(
    st.sampled_from(["_R", "_RN", "_RI", "_ZN", "_Z", "_GLOBAL__I_", "._R", "$_ZN"]),
    st.text(alphabet=MANGLED_CHARS, max_size=200),
)
def test_prefixed_garbage_never_raises(prefix: str, rest: str) -> None:
    # GIVEN random text behind a mangling prefix / WHEN demangled / THEN no exception
    assert isinstance(demangle(prefix + rest), str)


@PROPERTY
@given(st.lists(st.sampled_from(V0_TOKENS), max_size=80))
def test_v0_token_soup_never_raises(tokens: list[str]) -> None:
    # GIVEN v0-shaped garbage (back-references, binders, nesting) / WHEN demangled
    name = "_R" + "".join(tokens)
    start = time.monotonic()
    result = demangle(name)
    # THEN it returns a string promptly
    assert isinstance(result, str)
    assert time.monotonic() - start < 2


@PROPERTY
@given(st.text(alphabet=MANGLED_CHARS, max_size=60))
def test_unmangled_names_are_unchanged(name: str) -> None:
    # GIVEN a name that carries no mangling prefix once affixes are set aside
    core = name.lstrip(".$").partition("@")[0]
    if core.startswith(("_Z", "_R", "_GLOBAL_")):
        return
    # WHEN demangled / THEN it is returned as is
    assert demangle(name) == name

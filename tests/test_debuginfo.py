"""Debug-info lookup: build-id trees, .gnu_debuglink (with CRC), MiniDebugInfo, debuginfod.

The program is built at test time and split with objcopy/strip (tests/debug_helpers.py).
The debuginfod server is an http.server on 127.0.0.1 started by the test.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bee_contract.cachehome import user_cache_dir
from bee_report.elf.elffile import ElfFile
from bee_report.elf.symbols import FunctionTable
from bee_report.find.debuginfo import (
    best_symbol_source,
    debuglink_candidates,
    find_debug_file,
    merge_function_tables,
)
from bee_report.find.debuginfod import Debuginfod
from tests.debug_helpers import Split, build_split, with_minidebuginfo

LIBC = Path("/usr/lib/x86_64-linux-gnu/libc.so.6")
ORIGINAL = "/opt/app/bin/prog"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Split, Split]:
    """The program (variant 3) and a different build of it (variant 5, other build-id)."""
    root = tmp_path_factory.mktemp("debuginfo")
    return build_split(root / "a", 3), build_split(root / "b", 5)


@pytest.fixture()
def prog(built: tuple[Split, Split]) -> Split:
    return built[0]


@pytest.fixture()
def other(built: tuple[Split, Split]) -> Split:
    return built[1]


def place(split: Split, folder: Path) -> Path:
    """A copy of the stripped binary, alone in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(split.binary, folder / "prog"))


def copy_to(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(src, dest))


def lookup(binary: Path, symbol_dirs: tuple[Path, ...] = (), *,
           global_dirs: tuple[Path, ...] = (), debuginfod: Debuginfod | None = None,
           original: str = ORIGINAL, build_id: str | None = None) -> Path | None:
    with ElfFile.open(binary) as elf:
        return find_debug_file(binary, elf, original, build_id or elf.build_id, symbol_dirs,
                               debuginfod, global_debug_dirs=global_dirs)


def tree(root: Path, build_id: str) -> Path:
    return root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"


# ------------------------------------------------------------------ build-id trees


def test_build_id_tree_in_symbols_dir(prog: Split, tmp_path: Path) -> None:
    # GIVEN the binary alone and its debug file in a symbols dir's .build-id tree
    binary = place(prog, tmp_path / "bin")
    want = copy_to(prog.debug, tree(tmp_path / "syms", prog.build_id))
    # WHEN looking it up THEN the tree's file is found
    assert lookup(binary, (tmp_path / "syms",)) == want


def test_debuginfod_layout_in_symbols_dir(prog: Split, tmp_path: Path) -> None:
    # GIVEN the debug file at <dir>/<build-id>/debuginfo (debuginfod's cache layout)
    binary = place(prog, tmp_path / "bin")
    want = copy_to(prog.debug, tmp_path / "syms" / prog.build_id / "debuginfo")
    # WHEN / THEN
    assert lookup(binary, (tmp_path / "syms",)) == want


def test_system_build_id_tree_has_libc_debug_file() -> None:
    # GIVEN the system libc and libc6-dbg's /usr/lib/debug/.build-id tree
    with ElfFile.open(LIBC) as elf:
        assert elf.build_id is not None
        want = tree(Path("/usr/lib/debug"), elf.build_id)
        if not want.is_file():
            pytest.skip(f"{want} absent: install libc6-dbg")
        # WHEN looking up with the default global debug folder
        got = find_debug_file(LIBC, elf, str(LIBC), elf.build_id, (), None)
    # THEN the system debug file is found
    assert got == want


def test_build_id_tree_wins_over_debuglink(prog: Split, tmp_path: Path) -> None:
    # GIVEN a valid debug file both next to the binary and in a symbols tree
    binary = place(prog, tmp_path / "bin")
    copy_to(prog.debug, tmp_path / "bin" / "prog.debug")
    want = copy_to(prog.debug, tree(tmp_path / "syms", prog.build_id))
    # WHEN / THEN the build-id tree is tried first
    assert lookup(binary, (tmp_path / "syms",)) == want


def test_build_id_tree_file_with_wrong_build_id_is_rejected(
    prog: Split, other: Split, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN another build's debug file under this build-id in the tree
    binary = place(prog, tmp_path / "bin")
    copy_to(other.debug, tree(tmp_path / "syms", prog.build_id))
    # WHEN / THEN it is not used, with a warning naming both build-ids
    assert lookup(binary, (tmp_path / "syms",)) is None
    err = capsys.readouterr().err
    assert other.build_id in err and prog.build_id in err and "not used" in err


# -------------------------------------------------------------------- debuglink


def test_debuglink_next_to_binary(prog: Split, tmp_path: Path) -> None:
    binary = place(prog, tmp_path / "bin")
    want = copy_to(prog.debug, tmp_path / "bin" / "prog.debug")
    assert lookup(binary) == want


def test_debuglink_in_dot_debug_beside_binary(prog: Split, tmp_path: Path) -> None:
    binary = place(prog, tmp_path / "bin")
    want = copy_to(prog.debug, tmp_path / "bin" / ".debug" / "prog.debug")
    assert lookup(binary) == want


def test_debuglink_under_global_debug_dir_mirrors_original_folder(
    prog: Split, tmp_path: Path,
) -> None:
    # GIVEN a global debug folder holding <dir of original path>/prog.debug
    binary = place(prog, tmp_path / "bin")
    gdebug = tmp_path / "usr-lib-debug"
    want = copy_to(prog.debug, gdebug / "opt" / "app" / "bin" / "prog.debug")
    # WHEN / THEN it is found through the recorded path's folder
    assert lookup(binary, global_dirs=(gdebug,)) == want


@pytest.mark.parametrize("where", [
    "prog.debug",  # flat
    "opt/app/bin/prog.debug",  # mirroring the target
    "opt/app/bin/.debug/prog.debug",
    "usr/lib/debug/opt/app/bin/prog.debug",  # a sysroot with its debug folder
])
def test_debuglink_in_symbols_dir(prog: Split, tmp_path: Path, where: str) -> None:
    binary = place(prog, tmp_path / "bin")
    want = copy_to(prog.debug, tmp_path / "syms" / where)
    assert lookup(binary, (tmp_path / "syms",)) == want


def test_debuglink_wrong_crc_is_skipped_with_warning(
    prog: Split, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN next to the binary a debug file with the right build-id but other bytes
    binary = place(prog, tmp_path / "bin")
    bad = tmp_path / "bin" / "prog.debug"
    bad.write_bytes(prog.debug.read_bytes() + b"\0")
    # WHEN / THEN it is skipped with a CRC warning
    assert lookup(binary) is None
    assert "CRC32" in capsys.readouterr().err
    # AND a good copy later in the search order is then found
    good = copy_to(prog.debug, tmp_path / "bin" / ".debug" / "prog.debug")
    assert lookup(binary) == good


def test_debuglink_with_wrong_build_id_is_rejected(
    prog: Split, other: Split, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN another build's debug file under the linked name
    binary = place(prog, tmp_path / "bin")
    copy_to(other.debug, tmp_path / "bin" / "prog.debug")
    # WHEN / THEN it is rejected by build-id
    assert lookup(binary) is None
    assert other.build_id in capsys.readouterr().err


def test_debuglink_only_crc_when_build_id_unknown(prog: Split, tmp_path: Path) -> None:
    # GIVEN a binary without recorded build-id, its CRC-matching debug file next to it
    binary = place(prog, tmp_path / "bin")
    want = copy_to(prog.debug, tmp_path / "bin" / "prog.debug")
    with ElfFile.open(binary) as elf:
        # WHEN / THEN the binary's own build-id and the CRC both verify it
        assert find_debug_file(binary, elf, ORIGINAL, None, (), None,
                               global_debug_dirs=()) == want


def test_hostile_debuglink_names_and_paths_give_no_escape(tmp_path: Path) -> None:
    # GIVEN a link name with a slash THEN no candidate at all
    assert debuglink_candidates(tmp_path / "prog", ORIGINAL, "../../etc/passwd", ()) == []
    assert debuglink_candidates(tmp_path / "prog", ORIGINAL, "..", ()) == []
    # GIVEN a recorded path with '..' THEN it is not mirrored under any folder
    cands = debuglink_candidates(tmp_path / "bin" / "prog", "/a/../../etc/prog", "x.debug",
                                 (tmp_path / "syms",), (tmp_path / "g",))
    assert all(".." not in c.parts for c in cands)
    assert tmp_path / "syms" / "x.debug" in cands


# ----------------------------------------------------------- symbol sources


def address_of(split: Split, name: str) -> int:
    with ElfFile.open(split.full) as elf:
        arrays = elf.functions().to_arrays()
    return arrays["starts"][arrays["names"].index(name)]


def test_best_symbol_source_prefers_debug_file(prog: Split) -> None:
    with ElfFile.open(prog.binary) as elf:
        src = best_symbol_source(elf, prog.debug)
        try:
            assert src.origin == "debug file" and src.debug is not None
            sym = src.functions.lookup(address_of(prog, "bee_static_helper"))
            assert sym is not None and sym.name == "bee_static_helper"
        finally:
            if src.debug is not None:
                src.debug.close()


def test_best_symbol_source_uses_minidebuginfo_when_stripped(prog: Split, tmp_path: Path) -> None:
    # GIVEN a fully stripped binary, without and with .gnu_debugdata
    stripped = Path(shutil.copy(prog.binary, tmp_path / "stripped"))
    from tests.debug_helpers import run

    run("strip", "--strip-all", stripped)
    mini = with_minidebuginfo(prog, tmp_path / "mini")
    addr = address_of(prog, "bee_static_helper")
    # WHEN choosing a source without a debug file
    with ElfFile.open(stripped) as bare, ElfFile.open(mini) as elf:
        plain, rich = best_symbol_source(bare, None), best_symbol_source(elf, None)
    # THEN the bare binary only has .dynsym, the other names the static function
    assert plain.origin == "dynsym" and plain.functions.lookup(addr) is None
    assert rich.origin == "minidebuginfo"
    sym = rich.functions.lookup(addr)
    assert sym is not None and sym.name == "bee_static_helper"


def test_dynsym_table_is_cached_for_its_own_files_only(prog: Split, tmp_path: Path) -> None:
    from bee_report.elf import symtab_cache
    from bee_report.find.cachedir import source_key
    from tests.debug_helpers import run

    # GIVEN the .dynsym-only table of a fully stripped copy, cached under its files' key
    stripped = Path(shutil.copy(prog.binary, tmp_path / "stripped"))
    run("strip", "--strip-all", stripped)
    cache = tmp_path / "cache"
    with ElfFile.open(stripped) as bare:
        bid = bare.build_id
        src = best_symbol_source(bare, None)
    assert src.origin == "dynsym"
    symtab_cache.store(cache, bid, source_key(stripped, None), src.origin, src.functions)
    # WHEN the same file is reported again, THEN the cached table answers
    got = symtab_cache.load(cache, bid, source_key(stripped, None))
    assert got is not None and len(got) == len(src.functions)
    # WHEN the unstripped copy or the debug file is what was found, THEN it does not
    assert symtab_cache.load(cache, bid, source_key(prog.full, None)) is None
    assert symtab_cache.load(cache, bid, source_key(stripped, prog.debug)) is None


@pytest.mark.parametrize("kind", ["symlink", "fifo", "oversized"])
def test_cached_tables_that_are_not_bee_files_are_not_read(prog: Split, tmp_path: Path,
                                                           kind: str) -> None:
    import os

    from bee_report.dwarf import tables as dwarf_tables
    from bee_report.elf import symtab_cache
    from bee_report.find.cachedir import source_key

    # GIVEN the symbol-table and DWARF cache paths of a binary holding a link to a valid
    # entry elsewhere, a FIFO, or a file larger than any table bee writes
    cache = tmp_path / "cache"
    with ElfFile.open(prog.binary) as elf:
        bid = elf.build_id
        src = best_symbol_source(elf, None)
    key = source_key(prog.binary, None)
    assert bid is not None and key is not None
    symtab_cache.store(cache, bid, key, src.origin, src.functions)
    assert symtab_cache.load(cache, bid, key) is not None  # a valid entry, followed below
    saved = next((cache / "symtab").iterdir())
    elsewhere = tmp_path / "elsewhere"
    saved.rename(elsewhere)
    paths = [saved, dwarf_tables.cache_file(cache, bid, key)]
    paths[1].parent.mkdir(parents=True)
    for path in paths:
        if kind == "symlink":
            path.symlink_to(elsewhere)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            with open(path, "wb") as f:
                f.truncate(symtab_cache.MAX_FILE_BYTES + 1)
    # WHEN they are loaded THEN neither answers, and nothing blocks on the FIFO
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.extend(
        [symtab_cache.load(cache, bid, key), dwarf_tables.load(cache, bid, key)]), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "a cache read blocked"
    assert results == [None, None]


def test_merge_function_tables_keeps_union_and_first_on_ties() -> None:
    a = FunctionTable(array("Q", [0x10, 0x30]), array("Q", [0x10, 0x10]), ["a1", "a3"])
    b = FunctionTable(array("Q", [0x10, 0x20]), array("Q", [0x10, 0x10]), ["b1", "b2"])
    merged = merge_function_tables(a, b)
    assert [merged.lookup(x).name for x in (0x15, 0x25, 0x35)] == ["a1", "b2", "a3"]  # type: ignore[union-attr]
    assert len(merged) == 3


# ------------------------------------------------------------------ debuginfod


@dataclass
class Server:
    """A debuginfod-compatible server on 127.0.0.1 serving `root/<build-id>/<kind>`."""

    url: str
    root: Path
    requests: list[str] = field(default_factory=list)
    redirects: dict[str, str] = field(default_factory=dict)
    mode: str = "whole"  # "trickle": 1 byte / 0.2 s; "cut": half of it; "cut-no-length"


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "srv"
    root.mkdir()
    state = Server("", root)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[self.path])
                self.end_headers()
                return
            parts = self.path.split("/")
            ok = (len(parts) == 4 and parts[1] == "buildid" and parts[2].isalnum()
                  and parts[3] in ("debuginfo", "executable"))
            file = root / parts[2] / parts[3] if ok else None
            if file is None or not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            self.send_response(200)
            if state.mode != "cut-no-length":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if state.mode == "trickle":  # bounded: stops by itself after 60 bytes
                for i in range(60):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
                return
            self.wfile.write(data[: len(data) // 2] if state.mode.startswith("cut") else data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def serve(server: Server, build_id: str, file: Path, kind: str = "debuginfo") -> None:
    copy_to(file, server.root / build_id / kind)


def test_debuginfod_fetches_verifies_and_caches(
    prog: Split, server: Server, tmp_path: Path,
) -> None:
    # GIVEN a server with the debug file
    serve(server, prog.build_id, prog.debug)
    client = Debuginfod([server.url], tmp_path / "cache", offline=False)
    # WHEN fetching it twice
    got = client.fetch(prog.build_id, "debuginfo")
    again = client.fetch(prog.build_id, "debuginfo")
    # THEN it lands in the cache layout, identical, after one request only
    want = tmp_path / "cache" / "debuginfod" / prog.build_id / "debuginfo"
    assert got == again == want
    assert want.read_bytes() == prog.debug.read_bytes()
    assert server.requests == [f"/buildid/{prog.build_id}/debuginfo"]
    # AND a later offline run uses the cache without asking
    offline = Debuginfod([server.url], tmp_path / "cache", offline=True)
    assert offline.fetch(prog.build_id) == want and len(server.requests) == 1


def test_debuginfod_executable(prog: Split, server: Server, tmp_path: Path) -> None:
    serve(server, prog.build_id, prog.full, "executable")
    got = Debuginfod([server.url], tmp_path / "c").fetch(prog.build_id, "executable")
    assert got is not None and got.read_bytes() == prog.full.read_bytes()


def test_debuginfod_404_is_negative_cached(prog: Split, server: Server, tmp_path: Path) -> None:
    client = Debuginfod([server.url], tmp_path / "cache")
    assert client.fetch(prog.build_id) is None
    assert client.fetch(prog.build_id) is None
    assert len(server.requests) == 1


def test_debuginfod_rejects_file_with_wrong_build_id(
    prog: Split, other: Split, server: Server, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a server answering for this build-id with another build's debug file
    serve(server, prog.build_id, other.debug)
    client = Debuginfod([server.url], tmp_path / "cache")
    # WHEN / THEN it is not used, not cached, and a warning names the build-id found
    assert client.fetch(prog.build_id) is None
    folder = tmp_path / "cache" / "debuginfod" / prog.build_id
    assert not folder.exists() or list(folder.iterdir()) == []
    assert other.build_id in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["../../etc", "ABCDEF", "a", "12/34", "", "0x12"])
def test_debuginfod_refuses_invalid_build_ids(server: Server, tmp_path: Path, bad: str) -> None:
    client = Debuginfod([server.url], tmp_path / "cache")
    assert client.fetch(bad) is None
    assert server.requests == []
    assert not (tmp_path / "cache").exists()


def test_debuginfod_offline_never_asks(prog: Split, server: Server, tmp_path: Path) -> None:
    serve(server, prog.build_id, prog.debug)
    assert Debuginfod([server.url], tmp_path / "c", offline=True).fetch(prog.build_id) is None
    assert server.requests == []


def test_debuginfod_size_limit(prog: Split, server: Server, tmp_path: Path) -> None:
    serve(server, prog.build_id, prog.debug)
    client = Debuginfod([server.url], tmp_path / "cache", max_bytes=100)
    assert client.fetch(prog.build_id) is None
    assert not (tmp_path / "cache" / "debuginfod" / prog.build_id / "debuginfo").exists()


def test_debuginfod_does_not_follow_redirect_to_file_url(
    prog: Split, server: Server, tmp_path: Path,
) -> None:
    # GIVEN a server redirecting to a local file with the right build-id
    server.redirects[f"/buildid/{prog.build_id}/debuginfo"] = f"file://{prog.debug}"
    # WHEN / THEN the redirect is not followed
    assert Debuginfod([server.url], tmp_path / "cache").fetch(prog.build_id) is None


def test_debuginfod_unreachable_server_is_a_warning(
    prog: Split, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Debuginfod([f"http://127.0.0.1:{port}"], tmp_path / "cache", timeout=2)
    assert client.fetch(prog.build_id) is None
    assert "not asked again" in capsys.readouterr().err


def test_debuginfod_from_environment(server: Server, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert Debuginfod.from_environment(tmp_path, environ={}) is None
    assert Debuginfod.from_environment(tmp_path, environ={
        "DEBUGINFOD_URLS": "file:///etc ftp://x"}) is None
    assert "not an http(s) URL" in capsys.readouterr().err
    client = Debuginfod.from_environment(tmp_path, environ={
        "DEBUGINFOD_URLS": f"  {server.url}/  "})
    assert client is not None and client.urls == (server.url,)


def test_find_debug_file_falls_back_to_debuginfod(
    prog: Split, server: Server, tmp_path: Path,
) -> None:
    # GIVEN nothing local but a server with the debug file
    binary = place(prog, tmp_path / "bin")
    serve(server, prog.build_id, prog.debug)
    client = Debuginfod([server.url], tmp_path / "cache")
    # WHEN / THEN find_debug_file downloads it
    got = lookup(binary, debuginfod=client)
    assert got is not None and got.read_bytes() == prog.debug.read_bytes()


def test_user_cache_dir_follows_xdg(tmp_path: Path) -> None:
    assert user_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "bee"
    assert user_cache_dir({"XDG_CACHE_HOME": "relative"}).name == "bee"


def test_debuginfod_slow_server_hits_the_download_deadline(
    prog: Split, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a server that sends a byte every 0.2 s (each read well within the timeout)
    serve(server, prog.build_id, prog.debug)
    server.mode = "trickle"
    client = Debuginfod([server.url], tmp_path / "cache", timeout=5, deadline=1.5)
    # WHEN fetched THEN it gives up at the deadline, says which server was slow, and
    # does not ask it again in this run
    start = time.monotonic()
    assert client.fetch(prog.build_id) is None
    assert time.monotonic() - start < 5
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and server.url in err and "1.5 s" in err, err
    assert client.fetch(prog.build_id, "executable") is None
    assert len(server.requests) == 1
    assert list((tmp_path / "cache" / "debuginfod" / prog.build_id).iterdir()) == []


def test_debuginfod_run_budget_stops_all_downloads(
    prog: Split, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a run whose download budget is used up
    serve(server, prog.build_id, prog.debug)
    client = Debuginfod([server.url], tmp_path / "cache", run_budget=0.0)
    # WHEN a file is wanted THEN no server is asked, with one line saying why
    assert client.fetch(prog.build_id) is None
    assert server.requests == []
    assert "budget" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["cut", "cut-no-length"])
def test_debuginfod_download_cut_off_is_not_cached(
    prog: Split, server: Server, tmp_path: Path, mode: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a server whose answer stops halfway (build-id note included)
    serve(server, prog.build_id, prog.debug)
    server.mode = mode
    client = Debuginfod([server.url], tmp_path / "cache")
    # WHEN fetched THEN the partial file is refused with a reason and nothing is cached
    assert client.fetch(prog.build_id) is None
    assert "incomplete" in capsys.readouterr().err
    assert list((tmp_path / "cache" / "debuginfod" / prog.build_id).iterdir()) == []


def test_debuginfod_bad_cache_entry_is_dropped_and_fetched_again(
    prog: Split, server: Server, tmp_path: Path,
) -> None:
    # GIVEN a cache entry cut off halfway (left by an older bee)
    serve(server, prog.build_id, prog.debug)
    entry = tmp_path / "cache" / "debuginfod" / prog.build_id / "debuginfo"
    entry.parent.mkdir(parents=True)
    data = prog.debug.read_bytes()
    entry.write_bytes(data[: len(data) // 2])
    # WHEN fetched THEN the entry is dropped and the whole file downloaded again
    client = Debuginfod([server.url], tmp_path / "cache")
    assert client.fetch(prog.build_id) == entry
    assert entry.read_bytes() == data and len(server.requests) == 1

"""`bee archive` (bee_record.archive) and unpacking untrusted archives (bee_report.find.unpack).

Recordings are made by hand (as formats/make_sample.py does) with mappings pointing at a
program built at test time and at the system libc; libc's debug file comes from libc6-dbg.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bee_contract import codec
from bee_contract.buildid import build_id_of_path
from bee_contract.errors import ArchiveError, BeeError, OutputError
from bee_contract.recording import (
    LOST_STACK,
    NO_STACK,
    Binary,
    Header,
    KernelInfo,
    Mapping,
    Process,
    Recording,
    Sample,
)
from bee_record.archive import archive
from bee_report.elf.elffile import ElfFile
from bee_report.find.debuginfo import find_debug_file
from bee_report.find.locate import Locator
from bee_report.find.unpack import is_archive, resolve_symbol_dirs, symbols_from_archive
from tests.debug_helpers import Split, build_split

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
LIBM = "/usr/lib/x86_64-linux-gnu/libm.so.6"
START_NS = 1_764_000_000_123_456_789
GHOST_ID = "ab" * 20
REPO = Path(__file__).resolve().parent.parent

PROG_MAP = (0x555555555000, 0x555555556000)
LIBC_MAP = (0x7F0000028000, 0x7F000017D000)
LIBM_MAP = (0x7F0000300000, 0x7F0000400000)
GHOST_MAP = (0x7F0000500000, 0x7F0000501000)
NOBID_MAP = (0x7F0000600000, 0x7F0000601000)
VDSO_MAP = (0x7FFFF7FC1000, 0x7FFFF7FC3000)


def tree_name(build_id: str, suffix: str = "") -> str:
    return f".build-id/{build_id[:2]}/{build_id[2:]}{suffix}"


def build_id(path: str | Path) -> str:
    got = build_id_of_path(str(path))
    assert got is not None, f"{path} has no build-id"
    return got


def header() -> Header:
    return Header(host="target-1", kernel_release="6.1.0", arch="x86_64",
                  start_time_ns=START_NS, duration_ns=10**9, frequency_hz=99, mode="cpu",
                  weight_unit="samples", events=("cpu-clock",), target="system",
                  bee_version="0.1.0")


def sample(process: int, user: int, kernel: int = NO_STACK) -> Sample:
    return Sample(process=process, tid=1, cpu=0, comm="t", user_stack=user,
                  kernel_stack=kernel, count=1, weight=1)


def mapping(span: tuple[int, int], path: str, binary: int) -> Mapping:
    return Mapping(span[0], span[1], 0, 0x803, 1, path, binary)


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Split:
    return build_split(tmp_path_factory.mktemp("archive") / "prog")


@pytest.fixture()
def debug_root(prog: Split, tmp_path: Path) -> Path:
    """A target-like /usr/lib/debug holding the program's debug file by build-id."""
    root = tmp_path / "usr-lib-debug"
    dest = root / tree_name(prog.build_id, ".debug")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(prog.debug.read_bytes())
    return root


def recording(prog: Split) -> Recording:
    """Process 0 maps prog, libc, libm, a vanished binary, one without build-id and the vdso;
    its samples hit prog, libc, the vanished one and the build-id-less one in user stacks,
    and libm only in a *kernel* stack. Process 1 maps libm elsewhere and is hit there only
    at process 0's libm addresses (so libm is hit by no one)."""
    binaries = (
        Binary(str(prog.binary), prog.build_id, prog.binary.stat().st_size),
        Binary(LIBC, build_id(LIBC), os.path.getsize(LIBC)),
        Binary(LIBM, build_id(LIBM), os.path.getsize(LIBM)),
        Binary("/nonexistent/ghost", GHOST_ID, 4096),
        Binary("/nonexistent/nobid", None, 4096),
    )
    app = Process(pid=4242, generation=0, ns_pid=4242, ppid=1, comm="app", exe=str(prog.binary),
                  cmdline=None, maps=(
                      mapping(PROG_MAP, str(prog.binary), 0), mapping(LIBC_MAP, LIBC, 1),
                      mapping(LIBM_MAP, LIBM, 2), mapping(GHOST_MAP, "/nonexistent/ghost", 3),
                      mapping(NOBID_MAP, "/nonexistent/nobid", 4), mapping(VDSO_MAP, "[vdso]", -1),
                  ))
    other = Process(pid=4343, generation=0, ns_pid=4343, ppid=1, comm="other", exe=LIBM,
                    cmdline=None, maps=(mapping((0x10000, 0x20000), LIBM, 2),))
    stacks = (
        (PROG_MAP[0] + 0x10, LIBC_MAP[0] + 0x100),  # user: prog leaf, libc caller
        (LIBM_MAP[0] + 0x10,),  # used only as a kernel stack
        (GHOST_MAP[0] + 1, NOBID_MAP[0] + 1, VDSO_MAP[0] + 1),  # user
        (LIBM_MAP[0] + 0x20,),  # user stack of process 1: outside its maps
    )
    samples = (sample(0, 0), sample(0, NO_STACK, 1), sample(0, LOST_STACK, 1), sample(0, 2),
               sample(1, 3))
    return Recording(header(), binaries, (app, other), stacks, samples,
                     KernelInfo("6.1.0", None, ()))


@pytest.fixture()
def made(prog: Split, debug_root: Path, tmp_path: Path) -> Callable[[str], Path]:
    """Write the recording, archive it to tmp_path/NAME (no live processes), return it."""
    rec = tmp_path / "rec.bee"
    codec.write(recording(prog), rec)

    def make(name: str) -> Path:
        out = tmp_path / name
        archive(rec, out, debug_dirs=(debug_root, Path("/usr/lib/debug")),
                proc=str(tmp_path / "no-proc"))
        return out

    return make


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_archive_holds_exactly_the_hit_binaries_and_debug_files(
    prog: Split, debug_root: Path, tmp_path: Path,
) -> None:
    # GIVEN a recording whose user stacks hit prog and libc (and two unavailable binaries)
    rec = tmp_path / "rec.bee"
    codec.write(recording(prog), rec)
    libc_id = build_id(LIBC)
    if not (Path("/usr/lib/debug") / tree_name(libc_id, ".debug")).is_file():
        pytest.skip("libc6-dbg is not installed")
    # WHEN archiving it
    out = tmp_path / "syms.tar.gz"
    result = archive(rec, out, debug_dirs=(debug_root, Path("/usr/lib/debug")),
                     proc=str(tmp_path / "no-proc"))
    # THEN the archive holds prog and libc with their debug files, and the manifest
    names = [m.name for m in members(out)]
    assert names == sorted([
        tree_name(prog.build_id), tree_name(prog.build_id, ".debug"),
        tree_name(libc_id), tree_name(libc_id, ".debug"), "MANIFEST.json",
    ])
    assert read_member(out, tree_name(prog.build_id)) == prog.binary.read_bytes()
    assert read_member(out, tree_name(prog.build_id, ".debug")) == prog.debug.read_bytes()
    assert read_member(out, tree_name(libc_id)) == Path(LIBC).read_bytes()
    # AND the result counts them, with the two unavailable binaries missing
    assert (result.binaries, result.debug_files, result.files) == (2, 2, 4)
    assert result.bytes == out.stat().st_size
    assert {m.path for m in result.missing} == {"/nonexistent/ghost", "/nonexistent/nobid"}
    assert result.summary().startswith(f"Wrote {out} (2 binaries, 2 debug files, ")
    assert result.summary().endswith(" MB; 2 missing)")


def test_manifest_says_what_was_included_and_what_is_missing(
    prog: Split, made: Callable[[str], Path],
) -> None:
    out = made("a.tar.gz")
    manifest = json.loads(read_member(out, "MANIFEST.json"))
    entry = manifest["binaries"][prog.build_id]
    assert entry["path"] == str(prog.binary)
    assert entry["size"] == prog.binary.stat().st_size
    assert entry["binary"] == tree_name(prog.build_id)
    assert entry["debug"] == tree_name(prog.build_id, ".debug")
    assert build_id(LIBM) not in manifest["binaries"]
    missing = {m["path"]: m for m in manifest["missing"]}
    assert missing["/nonexistent/ghost"]["build_id"] == GHOST_ID
    assert "No such file" in missing["/nonexistent/ghost"]["reason"]
    assert "process 4242 has exited" in missing["/nonexistent/ghost"]["reason"]
    assert missing["/nonexistent/nobid"]["reason"] == "no build-id recorded"


def test_archive_is_deterministic_and_private(made: Callable[[str], Path]) -> None:
    # GIVEN / WHEN archiving the same recording twice under different names
    a, b = made("a.tar.gz"), made("b.tar.gz")
    # THEN the bytes are the same, the files mode 0600, and no temporary file is left
    assert a.read_bytes() == b.read_bytes()
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    assert not [p for p in a.parent.iterdir() if p.name.endswith(".tmp")]
    # AND members carry fixed metadata
    for m in members(a):
        assert (m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, "", "", 0o644)
        assert m.mtime == START_NS // 10**9 and m.isreg()
    with gzip.open(a) as gz:
        gz.read(1)
    raw = a.read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08  # gzip mtime 0, no file name


def test_binary_replaced_on_disk_is_missing_not_archived(prog: Split, tmp_path: Path) -> None:
    # GIVEN a recording naming another build's file as the program (build-id changed)
    other = build_split(tmp_path / "other", variant=7)
    rec = recording(prog)
    rec = Recording(rec.header, (Binary(str(other.binary), prog.build_id, 1), *rec.binaries[1:]),
                    rec.processes, rec.stacks, rec.samples, rec.kernel)
    codec.write(rec, tmp_path / "rec.bee")
    # WHEN archiving THEN the replaced file is not taken; the reason names its build-id
    result = archive(tmp_path / "rec.bee", tmp_path / "o.tar.gz", debug_dirs=(),
                     proc=str(tmp_path / "no-proc"))
    assert tree_name(prog.build_id) not in [m.name for m in members(tmp_path / "o.tar.gz")]
    why = {m.path: m.reason for m in result.missing}[str(other.binary)]
    assert other.build_id in why


@pytest.mark.skipif(os.geteuid() != 0, reason="reading /proc/PID/map_files needs root")
def test_binary_gone_from_its_path_is_read_through_map_files(tmp_path: Path) -> None:
    # GIVEN this process's libc mapping, recorded under a path that does not exist
    real = os.path.realpath(LIBC)
    span = None
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and "x" in fields[1] and os.path.realpath(fields[5]) == real:
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            span = (lo, hi)
            break
    assert span is not None, "libc is not mapped executable in this process"
    bid = build_id(LIBC)
    proc = Process(pid=os.getpid(), generation=0, ns_pid=os.getpid(), ppid=1, comm="py",
                   exe="", cmdline=None, maps=(mapping(span, "/gone/libc.so.6", 0),))
    rec = Recording(header(), (Binary("/gone/libc.so.6", bid, 0),), (proc,),
                    ((span[0] + 0x10,),), (sample(0, 0),), KernelInfo("6.1.0", None, ()))
    codec.write(rec, tmp_path / "rec.bee")
    # WHEN archiving
    out = tmp_path / "o.tar.gz"
    result = archive(tmp_path / "rec.bee", out, debug_dirs=())
    # THEN libc was read through /proc/PID/map_files
    assert result.binaries == 1 and not result.missing
    assert read_member(out, tree_name(bid)) == Path(LIBC).read_bytes()
    source = json.loads(read_member(out, "MANIFEST.json"))["binaries"][bid]["source"]
    assert source.startswith(f"/proc/{os.getpid()}/map_files/")


def test_archive_errors_are_one_line(prog: Split, tmp_path: Path) -> None:
    bad = tmp_path / "bad.bee"
    bad.write_bytes(b"not a recording")
    with pytest.raises(BeeError) as exc:
        archive(bad, tmp_path / "o.tar.gz")
    assert "not a bee recording" in str(exc.value) and "\n" not in str(exc.value)
    good = tmp_path / "rec.bee"
    codec.write(recording(prog), good)
    with pytest.raises(OutputError) as exc2:
        archive(good, tmp_path / "no" / "such" / "dir" / "o.tar.gz", debug_dirs=())
    assert "cannot write" in str(exc2.value)
    with pytest.raises(OutputError):
        archive(good, good)
    assert codec.read(good).binaries  # the recording is untouched


# ------------------------------------------------------------------ unpacking


def test_unpacked_archive_serves_as_symbols_folder(
    prog: Split, made: Callable[[str], Path], tmp_path: Path,
) -> None:
    # GIVEN an archive from the target
    out = made("syms.tar.gz")
    # WHEN unpacking it
    folder = symbols_from_archive(out, tmp_path / "cache")
    # THEN the locator finds the binary there by build-id, and the debug file too
    found = Locator([folder], use_original_paths=False).find("/opt/app/prog", prog.build_id)
    assert found is not None and found.read_bytes() == prog.binary.read_bytes()
    with ElfFile.open(found) as elf:
        dbg = find_debug_file(found, elf, "/opt/app/prog", prog.build_id, [folder], None,
                              global_debug_dirs=())
    assert dbg == folder / tree_name(prog.build_id, ".debug")
    assert stat.S_IMODE(found.stat().st_mode) == 0o600


def test_unpacked_archive_is_reused(
    made: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = made("syms.tar.gz")
    first = symbols_from_archive(out, tmp_path / "cache")
    import bee_report.find.unpack as unpack

    def no_extract(*args: object) -> None:
        raise AssertionError("extracted again")

    monkeypatch.setattr(unpack, "_extract", no_extract)
    assert symbols_from_archive(out, tmp_path / "cache") == first
    assert first.parent.name == hashlib.sha256(out.read_bytes()).hexdigest()


def tar_bytes(*adds: Callable[[tarfile.TarFile], None]) -> bytes:
    """An uncompressed tar made by calling each of `adds` in turn."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for add in adds:
            add(tar)
    return buf.getvalue()


def regular(name: str, data: bytes = b"x") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return add


def special(name: str, kind: bytes, link: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        regular("ok", b"fine")(tar)
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        tar.addfile(info)
    return add


def header_only(info: tarfile.TarInfo) -> bytes:
    """A tar whose one header declares data that is not there."""
    return info.tobuf(tarfile.GNU_FORMAT) + bytes(1024)


def huge() -> bytes:
    info = tarfile.TarInfo("big")
    info.size = 9 << 30
    return header_only(info)


def long_name_bomb() -> bytes:
    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    info.size = 100 << 20
    return header_only(info)


HOSTILE: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "dotdot": (lambda: tar_bytes(regular("../x")), "../x", "'..'"),
    "dotdot-inner": (lambda: tar_bytes(regular("a/../../x")), "a/../../x", "'..'"),
    "absolute": (lambda: tar_bytes(regular("/etc/x")), "/etc/x", "absolute"),
    "symlink": (lambda: tar_bytes(special("evil", tarfile.SYMTYPE, "/etc/passwd")), "evil",
                "symbolic link"),
    "hardlink": (lambda: tar_bytes(special("hard", tarfile.LNKTYPE, "ok")), "hard", "hard link"),
    "chardev": (lambda: tar_bytes(special("dev", tarfile.CHRTYPE)), "dev", "device"),
    "blockdev": (lambda: tar_bytes(special("blk", tarfile.BLKTYPE)), "blk", "device"),
    "fifo": (lambda: tar_bytes(special("pipe", tarfile.FIFOTYPE)), "pipe", "FIFO"),
    "huge": (huge, "big", "more than"),
    "long-name-bomb": (long_name_bomb, "", "larger than"),
    "duplicate": (lambda: tar_bytes(regular("d"), regular("d")), "d",
                  "duplicate"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused(case: str, tmp_path: Path) -> None:
    # GIVEN a hostile archive
    make, member, why = HOSTILE[case]
    archive_path = tmp_path / f"{case}.tar.gz"
    archive_path.write_bytes(gzip.compress(make(), mtime=0))
    # WHEN unpacking THEN one line names the archive, the member and the reason
    with pytest.raises(ArchiveError) as exc:
        symbols_from_archive(archive_path, tmp_path / "cache")
    msg = str(exc.value)
    assert str(archive_path) in msg and why in msg and "\n" not in msg
    if member:
        assert repr(member) in msg
    # AND nothing was written outside the cache, and nothing is left in it
    assert not (tmp_path / "x").exists() and not Path("/etc/x").exists()
    assert list((tmp_path / "cache" / "archives").iterdir()) == []


def test_member_count_limit(tmp_path: Path) -> None:
    data = tar_bytes(*[regular(f"f{i}") for i in range(5)])
    path = tmp_path / "many.tar"
    path.write_bytes(data)
    with pytest.raises(ArchiveError, match="more than 3 members"):
        symbols_from_archive(path, tmp_path / "cache", max_members=3)
    assert symbols_from_archive(path, tmp_path / "cache", max_members=5).is_dir()


@pytest.mark.parametrize("damage", ["garbage", "truncated-gz", "truncated-tar", "cut-header"])
def test_corrupt_archives_are_one_line(damage: str, tmp_path: Path) -> None:
    # GIVEN a damaged archive
    plain = tar_bytes(*[regular(f"f{i}", os.urandom(3000)) for i in range(3)])
    name, data = {
        "garbage": ("g.tar.gz", b"\x1f\x8b" + os.urandom(2000)),
        "truncated-gz": ("t.tar.gz", gzip.compress(plain)[:1500]),
        "truncated-tar": ("t.tar", plain[:5000]),  # inside the second member's data
        "cut-header": ("c.tar", plain[:3584]),  # ends right after the first member
    }[damage]
    path = tmp_path / name
    path.write_bytes(data)
    # WHEN / THEN one line, no traceback, nothing left in the cache
    with pytest.raises(ArchiveError) as exc:
        symbols_from_archive(path, tmp_path / "cache")
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    assert list((tmp_path / "cache" / "archives").iterdir()) == []


@pytest.mark.parametrize("suffix", [".tar", ".tar.xz", ".tar.bz2"])
def test_other_compressions_and_dot_slash_names(suffix: str, tmp_path: Path) -> None:
    # GIVEN a tar made like `tar -C dir .`: ./ and folder members, in several compressions
    def add(tar: tarfile.TarFile) -> None:
        for folder in ("./", "./.build-id", "./.build-id/ab"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        regular("./.build-id/ab/cdef", b"elf")(tar)

    buf = io.BytesIO()
    mode = {".tar": "w", ".tar.xz": "w:xz", ".tar.bz2": "w:bz2"}[suffix]
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        add(tar)
    path = tmp_path / f"s{suffix}"
    path.write_bytes(buf.getvalue())
    # WHEN / THEN it unpacks
    folder = symbols_from_archive(path, tmp_path / "cache")
    assert (folder / ".build-id" / "ab" / "cdef").read_bytes() == b"elf"


def test_missing_archive_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="cannot read"):
        symbols_from_archive(tmp_path / "nope.tar.gz", tmp_path / "cache")


def test_resolve_symbol_dirs_replaces_only_archives(
    made: Callable[[str], Path], tmp_path: Path,
) -> None:
    out = made("syms.tar.gz")
    plain = tmp_path / "plain"
    plain.mkdir()
    got = resolve_symbol_dirs([plain, out], tmp_path / "cache")
    assert got[0] == plain and got[1] == symbols_from_archive(out, tmp_path / "cache")
    assert got[1].is_dir() and is_archive(out) and not is_archive(plain)


def test_archive_module_never_loads_report_code() -> None:
    code = ("import sys, bee_record.archive; "
            "sys.exit(any(m.startswith('bee_report') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_sparse_member_is_refused(tmp_path: Path) -> None:
    # GIVEN a tar.gz of a 64 MiB sparse file holding 4 KiB of data (a few hundred bytes)
    sparse = tmp_path / "src" / "holes"
    sparse.parent.mkdir()
    with open(sparse, "wb") as f:
        f.seek(64 << 20)
        f.write(b"x" * 4096)
    path = tmp_path / "sparse.tar.gz"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-czf", path, "-C", sparse.parent,
                    "holes"], check=True)
    assert path.stat().st_size < 1000
    # WHEN unpacked THEN the sparse member is refused before anything dense is written
    with pytest.raises(ArchiveError, match="'holes': sparse file; refused"):
        symbols_from_archive(path, tmp_path / "cache")
    assert list((tmp_path / "cache" / "archives").iterdir()) == []


def test_expansion_far_beyond_the_archive_size_is_refused(tmp_path: Path) -> None:
    # GIVEN a 130 KB tar.gz whose one member is 128 MiB of zeros
    info = tarfile.TarInfo("zeros")
    info.size = 128 << 20
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:  # type: ignore[call-overload]
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    path = tmp_path / "zeros.tar.gz"
    path.write_bytes(buf.getvalue())
    # WHEN unpacked THEN it is refused for its expansion, with nothing left behind
    with pytest.raises(ArchiveError, match=r"'zeros'.* more than 64 MiB; refused"):
        symbols_from_archive(path, tmp_path / "cache")
    assert list((tmp_path / "cache" / "archives").iterdir()) == []


def test_archive_cache_is_bounded_oldest_extraction_goes_first(tmp_path: Path) -> None:
    # GIVEN a cache bounded to a little more than one extraction, holding one
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    first.write_bytes(tar_bytes(regular("f", os.urandom(40_000))))
    second.write_bytes(tar_bytes(regular("g", os.urandom(40_000))))
    cache = tmp_path / "cache"
    old = symbols_from_archive(first, cache, max_cache_bytes=60_000)
    assert (old / "f").is_file()
    # WHEN another archive is unpacked THEN the older extraction makes room for it
    new = symbols_from_archive(second, cache, max_cache_bytes=60_000)
    assert (new / "g").is_file() and not old.exists()

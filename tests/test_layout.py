"""The two stages stay apart: what `bee record` and the codec import."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

_SHOW = ("import sys, atexit\n"
         "atexit.register(lambda: print('MODULES', *sorted(sys.modules), file=sys.stderr))\n")


def _modules(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", _SHOW + code], capture_output=True,
                          text=True, cwd=REPO)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


def test_bee_record_never_imports_report_code() -> None:
    # GIVEN `bee record` run far enough to validate its options
    mods = _modules("sys.argv = ['bee', 'record', '-p', '999999999', '-o', '/tmp/x.bee']\n"
                    "from bee.cli import main\nmain()")
    # THEN neither the report stage nor any ELF/DWARF library was imported
    assert "bee_record.record" in mods
    banned = {m for m in mods if m.split(".")[0] in {"bee_report", "elftools", "symbolic",
                                                       "cxxfilt"}}
    assert banned == set()


def test_bee_archive_never_imports_report_code() -> None:
    mods = _modules("sys.argv = ['bee', 'archive', 'formats/sample-v1.bee',\n"
                    "            '-o', '/nonexistent/x']\n"
                    "from bee.cli import main\nmain()")
    assert "bee_record.archive" in mods
    assert not {m for m in mods if m.split(".")[0] in {"bee_report", "elftools", "symbolic"}}


def test_codec_imports_without_bcc_or_report_code() -> None:
    mods = _modules("import bee_record.codec, bee_record.recording")
    assert "msgpack" in mods
    assert not {m for m in mods if m.split(".")[0] in {"bcc", "bee_report", "typer"}}


def test_bee_record_package_uses_only_stdlib_msgpack_and_bcc() -> None:
    # every module of bee_record, imported together, pulls in nothing else third-party
    mods = _modules("import pkgutil, importlib, bee_record\n"
                    "for m in pkgutil.iter_modules(bee_record.__path__):\n"
                    "    importlib.import_module('bee_record.' + m.name)")
    runtime = ("_cython", "cython_runtime", "__editable__")  # msgpack's C extension, pip -e
    third_party = {m.split(".")[0] for m in mods if not m.startswith(runtime)} - set(
        sys.stdlib_module_names) - {"bee_record", "msgpack", "bcc", "__main__", "_distutils_hack",
                                    "sitecustomize"}
    assert third_party == set(), third_party

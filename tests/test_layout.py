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
    mods = _modules("import bee_contract.codec, bee_contract.recording")
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
                                    "sitecustomize", "bee_contract"}
    assert third_party == set(), third_party


def test_contract_package_imports_only_stdlib_and_msgpack() -> None:
    # GIVEN every module of the contract package, imported together
    mods = _modules("import pkgutil, importlib, bee_contract\n"
                    "for m in pkgutil.iter_modules(bee_contract.__path__):\n"
                    "    importlib.import_module('bee_contract.' + m.name)")
    # THEN nothing but the standard library, msgpack and the contract itself is loaded
    runtime = ("_cython", "cython_runtime", "__editable__")
    third_party = {m.split(".")[0] for m in mods if not m.startswith(runtime)} - set(
        sys.stdlib_module_names) - {"bee_contract", "msgpack", "__main__", "_distutils_hack",
                                    "sitecustomize"}
    assert third_party == set(), third_party


def _imported_packages(folder: str) -> set[str]:
    """Top-level bee packages named by import statements in the .py files under folder."""
    import ast

    found: set[str] = set()
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
    return {m for m in found if m.startswith("bee")}


def test_only_the_bpf_loader_imports_bcc() -> None:
    # GIVEN the import statements of every module of bee and its stages
    import ast

    importers = set()
    for top in ("bee", "bee_record", "bee_report", "bee_contract"):
        for path in (REPO / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                         [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                if any(n.split(".")[0] == "bcc" for n in names):
                    importers.add(str(path.relative_to(REPO)))
    # THEN one module imports bcc: the one that loads the BPF program (compiled or cached)
    assert importers == {"bee_record/bpf_load.py"}, importers


def test_stages_never_import_each_other() -> None:
    # GIVEN the import statements of each stage and of the contract
    record, report, contract = (_imported_packages(f) for f in
                                ("bee_record", "bee_report", "bee_contract"))
    # THEN each stage imports only itself and the contract; the contract only itself
    assert record <= {"bee_record", "bee_contract"}, record
    assert report <= {"bee_report", "bee_contract"}, report
    assert contract == {"bee_contract"}, contract


def test_report_package_is_split_along_its_pipeline() -> None:
    # GIVEN the report package's top level
    top = REPO / "bee_report"
    modules = [p for p in top.glob("*.py") if p.name != "__init__.py"]
    packages = [p for p in top.iterdir() if (p / "__init__.py").is_file()]
    # THEN few loose modules and the pipeline's rooms as subpackages
    assert len(modules) <= 12, sorted(p.name for p in modules)
    assert {p.name for p in packages} >= {"find", "elf", "dwarf", "demangle", "reporters"}


def test_installed_packages_are_all_bee_named() -> None:
    # GIVEN the packages (and the folders they come from) that the wheel installs
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    # THEN every installed top-level name starts with "bee", and each mapped folder exists
    assert all(p.split(".")[0].startswith("bee") for p in config["packages"]), config["packages"]
    for package, folder in config.get("package-dir", {}).items():
        assert package.startswith("bee") and (REPO / folder).is_dir(), (package, folder)
    assert set(config["package-data"]) <= set(config["packages"])
    # AND every package of the source tree is installed (none forgotten in the list)
    found = {".".join(p.parent.relative_to(REPO).parts)
             for top in ("bee", "bee_contract", "bee_record", "bee_report")
             for p in (REPO / top).rglob("__init__.py")}
    assert found <= set(config["packages"]), found - set(config["packages"])


def test_bpf_source_and_format_spec_are_package_data() -> None:
    from importlib import resources

    assert "BPF_" in resources.files("bee_record.bpf").joinpath("profile.c").read_text()
    spec = resources.files("bee_contract.formats").joinpath("recording-v1.md").read_text()
    assert spec.startswith("#")


def test_bpf_sources_avoid_what_makes_bcc_compile_slow() -> None:
    """No kernel header (seconds of clang per launch) and no call of bpf_probe_read_user by
    that name (bcc parses /proc/kallsyms at each such call site): see bpf/profile.c."""
    import re
    from importlib import resources

    bpf = resources.files("bee_record.bpf")
    sources = {n: bpf.joinpath(n).read_text() for n in ("profile.c", "unwind.c", "python.c")}
    for name, text in sources.items():
        code = "\n".join(line for line in text.splitlines()
                         if not line.lstrip().startswith("//"))
        assert not re.search(r"^\s*#\s*include\b", code, re.M), name
        assert not re.search(r"\bbpf_probe_read_user(_str)?\s*\(", code), name
    assert "(void *)BPF_FUNC_probe_read_user" in sources["profile.c"]

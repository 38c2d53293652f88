"""atheris target: extracting untrusted symbol archives (`--symbols FILE.tar.gz`).

    .venv/bin/python fuzz/fuzz_archive.py -atheris_runs=100000 CORPUS_DIR

Seed the corpus with an archive made by `bee archive`. Anything but a BeeError escaping,
or a file written outside the extraction folder, is a finding.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import atheris
from atheris_main import run

with atheris.instrument_imports():
    from bee_contract.errors import BeeError
    from bee_report.find.unpack import symbols_from_archive

_DIR = Path(tempfile.mkdtemp(prefix="bee-fuzz-archive-"))


def one_input(data: bytes) -> None:
    """Extract one input into a fresh cache folder and check where files went."""
    path = _DIR / "input.tar.gz"
    path.write_bytes(data)
    cache = _DIR / "cache"
    try:
        folder = symbols_from_archive(path, cache)
        for p in folder.rglob("*"):
            if not p.resolve().is_relative_to(folder.resolve()):
                raise AssertionError(f"{p} escaped the extraction folder")
    except BeeError:
        pass
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    run(one_input)

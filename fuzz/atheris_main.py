"""The command line every atheris target here shares.

    .venv/bin/python fuzz/fuzz_X.py [atheris options] CORPUS_DIR   # fuzz
    .venv/bin/python fuzz/fuzz_X.py seed DIR                        # write seeds (if any)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import atheris


def run(one_input: Callable[[bytes], None], seed: Callable[[Path], None] | None = None) -> None:
    """Write the target's seeds (`seed DIR`), or fuzz `one_input` with atheris."""
    if seed is not None and sys.argv[1:2] == ["seed"]:
        seed(Path(sys.argv[2]))
        return
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

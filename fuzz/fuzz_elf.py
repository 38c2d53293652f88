"""atheris target: the ELF reader (headers, sections, notes, symbols, compressed data),
the image bee prepares for symbolic (debug sections checked and inflated) and the
completeness check of debuginfod downloads.

    .venv/bin/python fuzz/fuzz_elf.py -atheris_runs=200000 CORPUS_DIR

Seed the corpus with a few small ELF files (e.g. a compiled tests/fixtures/elf/funcs.c).
Anything but a BeeError escaping is a finding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import atheris
from atheris_main import run

with atheris.instrument_imports():
    from bee_contract.errors import BeeError
    from bee_report.dwarf.symbolic_input import symbolic_image
    from bee_report.elf.elffile import ElfFile
    from bee_report.elf.plt import plt_functions
    from bee_report.find.debuginfod import _incomplete

_PATH = Path(tempfile.mkdtemp(prefix="bee-fuzz-elf-")) / "input.elf"


def one_input(data: bytes) -> None:
    """Parse one input as an ELF file and exercise every accessor."""
    try:
        elf = ElfFile.from_bytes(data, "fuzz.elf")
        for section in elf.sections:
            elf.section_data(section)
        _ = (elf.build_id, elf.debuglink, elf.has_debug_info)
        table = elf.functions()
        for seg in elf.segments:
            table.lookup(seg.vaddr + 1)
            elf.file_offset_to_vaddr(seg.offset)
        plt_functions(elf).lookup(0x1030)
        inner = elf.gnu_debugdata()
        if inner is not None:
            inner.functions()
        ElfFile.from_bytes(symbolic_image(data, elf), "image")
    except BeeError:
        pass
    _PATH.write_bytes(data)
    _incomplete(_PATH, None)  # a reason or None, never an exception


if __name__ == "__main__":
    run(one_input)

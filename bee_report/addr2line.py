"""`bee symbolize`: ELF virtual addresses to names and source lines, printed as
`addr2line -a -f -i -C` prints them, so the two can be compared line by line.

Debug info is found the same way as for `bee report` (build-id trees, `.gnu_debuglink`,
MiniDebugInfo, debuginfod) and cached per build-id. Line discriminators are not printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from bee_contract.errors import ReportError
from bee_report.demangle.binutils import demangle
from bee_report.elf.elffile import ElfFile
from bee_report.find.images import SymbolizeOptions, debuginfod_client, load_image


def parse_address(text: str) -> int:
    """A hexadecimal address, with or without `0x` (as addr2line reads them)."""
    raw = text.strip().lower()
    raw = raw[2:] if raw.startswith("0x") else raw
    try:
        value = int(raw, 16)
    except ValueError:
        raise ReportError(f"{text.strip()!r} is not a hexadecimal address") from None
    if value >= 1 << 64:
        raise ReportError(f"{text.strip()!r} is larger than 64 bits")
    return value


def _not_a_file(path: Path) -> str:
    """Why `path` (which is not a regular file) cannot be symbolized."""
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a directory"
    return "not a regular file"


def addr2line_lines(binary: Path, addresses: Iterable[int], opts: SymbolizeOptions,
              inlines: bool = True) -> Iterator[str]:
    """Lines of output for each address: the address, then function and file:line pairs."""
    if not binary.is_file():
        raise ReportError(f"{binary}: {_not_a_file(binary)}")
    elf = ElfFile.open(binary)
    try:
        image = load_image(elf, binary, str(binary), elf.build_id, opts,
                           debuginfod_client(opts))
    except BaseException:
        elf.close()
        raise
    debug, functions = image.debug, image.functions
    try:
        for addr in addresses:
            yield f"0x{addr:016x}"
            chain = debug.lookup(addr) if debug is not None else ()
            if not inlines:
                chain = chain[-1:]
            if chain:
                for sf in chain:
                    yield sf.function or "??"
                    yield f"{sf.file}:{sf.line if sf.line is not None else '?'}" if sf.file \
                        else "??:0"
                continue
            sym = functions.lookup(addr)
            yield demangle(sym.name) if sym is not None else "??"
            yield "??:?" if sym is not None else "??:0"
    finally:
        elf.close()

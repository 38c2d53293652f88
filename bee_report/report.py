"""`bee report`: read recordings, symbolize them, and run one reporter."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bee_record import codec
from bee_record.errors import ReportError
from bee_record.recording import Recording
from bee_report.profile import Profile
from bee_report.reporters import folded, top
from bee_report.symbolize import SymbolizeOptions, Symbolizer

FORMATS = ("folded", "top")


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What `bee report` was asked to do."""

    files: tuple[Path, ...]
    format: str = "folded"
    output: Path | None = None
    symbol_dirs: tuple[Path, ...] = ()
    limit: int = 25
    by: str = "function"


def load(files: tuple[Path, ...]) -> list[tuple[str, Recording]]:
    """Read and validate every recording (one line naming the file on failure)."""
    if not files:
        raise ReportError("no recording given")
    return [(str(f), codec.read(f)) for f in files]


def build_profile(files: tuple[Path, ...], symbol_dirs: tuple[Path, ...]) -> Profile:
    """Recordings to one symbolized Profile."""
    recordings = load(files)
    for d in symbol_dirs:
        if not d.exists():
            raise ReportError(f"{d}: symbols folder does not exist")
    sym = Symbolizer(SymbolizeOptions(symbol_dirs=symbol_dirs))
    try:
        return sym.profile(recordings)
    finally:
        sym.close()


def render(profile: Profile, opts: ReportOptions) -> str:
    """The text of the chosen format."""
    if opts.format == "folded":
        return folded.render(profile)
    if opts.format == "top":
        if opts.by not in top.BY_CHOICES:
            raise ReportError(f"--by {opts.by}: choose one of {', '.join(top.BY_CHOICES)}")
        return top.render(profile, opts.by, opts.limit)
    raise ReportError(f"--format {opts.format}: choose one of {', '.join(FORMATS)}")


def run(opts: ReportOptions) -> Path | None:
    """Produce the report; returns the output path when one was written."""
    if opts.format not in FORMATS:
        raise ReportError(f"--format {opts.format}: choose one of {', '.join(FORMATS)}")
    profile = build_profile(opts.files, opts.symbol_dirs)
    text = render(profile, opts)
    if opts.output is None:
        sys.stdout.write(text)
        return None
    codec.write_atomic(opts.output, text.encode(), mode=0o644)
    return opts.output

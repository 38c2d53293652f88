"""`bee report`: read recordings, symbolize them, filter, and run one reporter.

The pipeline both `bee report` and `bee diff` (:mod:`bee_report.compare`) run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bee_contract import codec
from bee_contract.atomic import check_not_input, write_atomic
from bee_contract.errors import ReportError
from bee_contract.recording import Recording
from bee_report.filters import Filters, apply, validate
from bee_report.find.images import SymbolizeOptions
from bee_report.profile import Profile
from bee_report.reporters.options import RenderOptions
from bee_report.reporters.registry import REPORTERS, Reporter, reporter
from bee_report.symbolize import Symbolizer


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What `bee report` was asked to do."""

    files: tuple[Path, ...]
    format: str = "folded"  # a registry.Format
    output: Path | None = None
    symbolize: SymbolizeOptions = field(default_factory=SymbolizeOptions)
    filters: Filters = field(default_factory=Filters)
    render_options: RenderOptions = field(default_factory=RenderOptions)


def load(files: tuple[Path, ...]) -> list[tuple[str, Recording]]:
    """Read and validate every recording (one line naming the file on failure)."""
    if not files:
        raise ReportError("no recording given")
    return [(str(f), codec.read(f)) for f in files]


def build_profile(files: tuple[Path, ...], opts: SymbolizeOptions) -> Profile:
    """Recordings to one symbolized Profile."""
    recordings = load(files)
    for d in opts.symbol_dirs:
        if not d.exists():
            raise ReportError(f"{d}: symbols folder does not exist")
    sym = Symbolizer(opts)
    try:
        return sym.profile(recordings)
    finally:
        sym.close()


def _reporter(name: str) -> Reporter:
    if name not in REPORTERS:
        raise ReportError(f"--format {name}: choose one of {', '.join(REPORTERS)}")
    return reporter(name)


def render(profile: Profile, opts: ReportOptions) -> str | bytes:
    """The output of the chosen format (bytes for binary formats)."""
    return _reporter(opts.format).render(profile, opts.render_options)


def emit(data: str | bytes, output: Path | None) -> Path | None:
    """Write to `output` atomically, or to stdout; returns the path written."""
    if isinstance(data, str) and data and not data.endswith("\n"):
        data += "\n"
    raw = data.encode() if isinstance(data, str) else data
    if output is None:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return None
    write_atomic(output, raw, sync=False)  # 0600; a report can be made again
    return output


def run(opts: ReportOptions) -> Path | None:
    """Produce the report; returns the output path when one was written."""
    chosen = _reporter(opts.format)
    if chosen.binary and opts.output is None and sys.stdout.isatty():
        raise ReportError("binary output: give a file with -o")
    validate(opts.filters)
    if opts.output is not None:
        check_not_input(opts.output, opts.files)
    profile = apply(build_profile(opts.files, opts.symbolize), opts.filters)
    return emit(chosen.render(profile, opts.render_options), opts.output)

"""What reporters take: the choices of report options, and the options themselves.

Each choice is an enum that the CLI hands to typer, so `--help` lists exactly the values
the code accepts and a wrong one is refused before any work starts. Light on purpose:
the CLI imports this module to declare its options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TopBy(StrEnum):
    """What a row of a top table counts: a function, a module, or a function at a line."""

    FUNCTION = "function"
    MODULE = "module"
    LINE = "line"


class Palette(StrEnum):
    """Flame graph colours: bee's own by frame kind, or flamegraph.pl's palettes."""

    BEE = "bee"
    HOT = "hot"
    MEM = "mem"
    IO = "io"
    JAVA = "java"


class Renderer(StrEnum):
    """Who draws a flame graph: inferno when installed (auto), bee's builtin, or inferno."""

    AUTO = "auto"
    BUILTIN = "builtin"
    INFERNO = "inferno"


class Share(StrEnum):
    """Which share of a function `bee diff` tests and sorts by."""

    SELF = "self"
    TOTAL = "total"


class Correction(StrEnum):
    """Multiple-comparison corrections: Benjamini-Hochberg (false discovery rate), Holm
    (family-wise error rate), or none."""

    BH = "bh"
    HOLM = "holm"
    NONE = "none"


@dataclass(frozen=True)
class FlameOptions:
    """How to draw a flame graph (names and defaults follow flamegraph.pl)."""

    title: str = "Flame Graph"
    subtitle: str = ""
    colors: str = Palette.BEE  # a Palette; "bee" colours frames by kind
    width: int = 1200
    minwidth: float = 0.1  # pixels; narrower frames are elided (counted into their parent)
    reverse: bool = False  # reverse stacks (icicle of callers, as flamegraph.pl --reverse)
    inverted: bool = False  # icicle: root at the top
    count_name: str = "samples"  # e.g. "samples", "ns" (units shown in tooltips)
    renderer: str = Renderer.AUTO  # a Renderer


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """The options a reporter may read (each reporter names the ones it takes)."""

    limit: int = 25  # rows of a top table
    by: str = TopBy.FUNCTION  # a TopBy
    lines: bool = False  # add file:line to frames
    per_thread: bool = False  # one profile per thread (speedscope)
    flame: FlameOptions = field(default_factory=FlameOptions)

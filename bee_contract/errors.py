"""The one error root of bee.

Every failure that bee reports to a user is a :class:`BeeError` (or a subclass). The CLI
catches it once and prints its message as one line to stderr, then exits non-zero. The
message names the file and the problem; it never needs a traceback to be understood.
"""

from __future__ import annotations


class BeeError(Exception):
    """Root of every error bee reports as one line and a non-zero exit."""

    exit_code: int = 1


class RecordingFormatError(BeeError):
    """A recording file is truncated, corrupt, foreign or of a newer format version."""

    exit_code = 2


class RecordError(BeeError):
    """`bee record` cannot start or finish (permissions, targets, output path)."""


class ReportError(BeeError):
    """`bee report` cannot produce its output (bad options, unusable inputs)."""


class ElfError(BeeError):
    """An ELF file (or a cached table derived from one) is malformed or unreadable."""


class DebugInfoError(BeeError):
    """A debug file is unreadable or its ELF/DWARF is malformed."""


class ArchiveError(BeeError):
    """A symbols archive is unreadable, corrupt, too big or holds a refused member."""


class OutputError(BeeError):
    """An output file cannot be written (any command): missing folder, permissions, disk full,
    refused target."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C's KeyboardInterrupt so that every cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

"""Recorded strings made safe for a terminal.

Process and thread names, paths, command lines and symbol names come from the target and
from untrusted binaries. Printed raw, an escape sequence in one of them could retitle the
reader's terminal, hide lines or worse. Every text output meant for a terminal (`bee
info`, the top tables, `bee symbolize`, warnings and error lines) goes through
:func:`for_terminal`; file formats (folded, SVG, JSON, pprof) keep the data exact and do
their own escaping.
"""

from __future__ import annotations

import re

# C0 controls but tab, DEL, C1 controls, and the Unicode bidirectional overrides
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """`text` with every control character (newlines too) shown as ``\\xNN``/``\\uNNNN``."""
    return _UNSAFE.sub(_escape, text)


def lines_for_terminal(lines: list[str]) -> str:
    """Lines made safe with :func:`for_terminal`, joined, ending with a newline."""
    return "".join(for_terminal(line) + "\n" for line in lines)


__all__ = ["for_terminal", "lines_for_terminal"]

"""Warnings printed once each to stderr, for problems that still allow a report."""

from __future__ import annotations

import sys

from bee_contract.text import for_terminal

_seen: set[str] = set()


def warn(message: str) -> None:
    """Print `warning: message` to stderr unless the same message was printed already."""
    if message in _seen:
        return
    _seen.add(message)
    print(f"bee: warning: {for_terminal(message)}", file=sys.stderr)


def reset() -> None:
    """Forget printed warnings (for a new command run in the same process)."""
    _seen.clear()

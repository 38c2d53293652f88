"""A progress bar for long symbolization, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts work done out of `total`; draws after `delay` seconds, at most 10 times/s."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 delay: float = 1.0) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self._start = time.monotonic()
        self._delay = delay
        self._last = 0.0
        self._drawn = False

    def advance(self, n: int = 1) -> None:
        """Record `n` more units done; redraw when due."""
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._start < self._delay or now - self._last < 0.1:
            return
        self._last = now
        frac = min(self.done / self.total, 1.0)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        self.stream.write(f"\r{self.label} [{bar}] {frac * 100:5.1f}% "
                          f"({self.done}/{self.total})")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the bar if one was drawn."""
        if self._drawn:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()
            self._drawn = False

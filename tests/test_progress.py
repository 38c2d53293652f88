"""The symbolization progress bar: drawn on a terminal only, erased at the end."""

from __future__ import annotations

import io

from bee_report.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_erases() -> None:
    out = _Tty()
    p = Progress(100, "symbolizing", stream=out, delay=0.0)
    for _ in range(100):
        p.advance()
    # the first unit draws at once (delay 0); later ones wait for the 0.1 s refresh
    assert out.getvalue().startswith("\rsymbolizing [")
    assert "  1.0% (1/100)" in out.getvalue()
    p.close()
    assert out.getvalue().endswith("\r")


def test_progress_is_silent_when_not_a_terminal() -> None:
    out = io.StringIO()
    p = Progress(10, "symbolizing", stream=out, delay=0.0)
    p.advance(10)
    p.close()
    assert out.getvalue() == ""

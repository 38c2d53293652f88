"""Recorded strings never reach a terminal raw: control characters and bidi overrides in
names, paths and command lines are shown escaped by every text output meant for one;
file formats escape them for their own syntax (folded, SVG)."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bee_contract import codec
from bee_contract.recording import Binary, KernelInfo, KernelSymbol
from bee_contract.text import for_terminal
from formats.make_sample import sample_recording

TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J\u202e"  # clears the screen, then reverses the text


@pytest.fixture()
def hostile(tmp_path: Path) -> Path:
    """The sample recording with escape sequences in every recorded string shown."""
    rec = sample_recording()
    app = dataclasses.replace(rec.processes[0], comm=f"app{TITLE}", exe=f"/opt/{CLEAR}app",
                              cmdline=("/opt/app", f"--x{TITLE}\nfake line"))
    kernel = KernelInfo(rec.kernel.release, rec.kernel.build_id, tuple(
        KernelSymbol(s.address, f"{s.name}{TITLE}", s.module) for s in rec.kernel.symbols))
    binaries = (Binary(f"/opt/app/bin/app{CLEAR}", rec.binaries[0].build_id, 1),
                *rec.binaries[1:])
    samples = tuple(dataclasses.replace(s, comm=f"{s.comm}{CLEAR}") for s in rec.samples)
    rec = dataclasses.replace(rec, processes=(app, *rec.processes[1:]), kernel=kernel,
                              binaries=binaries, samples=samples,
                              header=dataclasses.replace(rec.header, host=f"h{TITLE}"))
    path = tmp_path / "hostile.bee"
    codec.write(rec, path)
    return path


def test_for_terminal_escapes_controls_and_bidi_but_keeps_text() -> None:
    assert for_terminal("a\tb é 漢") == "a\tb é 漢"
    assert for_terminal(TITLE + "\n\r\x9b" + CLEAR) == (
        "\\x1b]0;pwned\\x07\\x0a\\x0d\\x9b\\x1b[2J\\u202e")


@pytest.mark.parametrize("args", [("info",), ("report", "-f", "top"),
                                  ("report", "-f", "top", "--by", "module"),
                                  ("diff", "SELF", "-f", "top")])
def test_terminal_outputs_and_warnings_hold_no_control_characters(
        hostile: Path, cli: Callable[..., Any], args: tuple[str, ...]) -> None:
    # GIVEN a recording full of escape sequences WHEN shown on a terminal
    argv = [a if a != "SELF" else str(hostile) for a in args]
    result = cli(argv[0], hostile, *argv[1:])
    assert result.exit_code == 0, result.stderr
    # THEN neither stdout nor stderr holds a control character but newlines
    for text in (result.stdout, result.stderr):
        assert for_terminal(text.replace("\n", "")) == text.replace("\n", "")
    # AND the recorded strings are still recognisable, escaped
    shown = result.stdout + result.stderr
    assert "\\x1b]0;pwned\\x07" in shown or "\\x1b[2J\\u202e" in shown


def test_errors_hold_no_control_characters(tmp_path: Path, cli: Callable[..., Any]) -> None:
    missing = tmp_path / f"no{TITLE}.bee"
    result = cli("report", missing)
    assert result.exit_code != 0
    assert "\x1b" not in result.stderr and "\\x1b]0;pwned" in result.stderr


def test_folded_and_svg_files_escape_for_their_own_syntax(
        hostile: Path, tmp_path: Path, cli: Callable[..., Any]) -> None:
    # WHEN written to files THEN folded applies its own rule (separators and controls
    # become spaces and colons), SVG is valid XML holding the names
    folded = cli("report", hostile, "-f", "folded")
    assert "do_idle ]0:pwned _[k]" in folded.stdout
    svg = tmp_path / "h.svg"
    assert cli("report", hostile, "-f", "svg", "-o", svg,
               "--renderer", "builtin").exit_code == 0
    root = ET.parse(svg).getroot()
    text = "".join(root.itertext())
    assert "pwned" in text and "\x1b" not in text

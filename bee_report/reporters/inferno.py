"""Flame graphs drawn by inferno (``inferno-flamegraph``), run as a subprocess.

The folded text is piped on stdin with a fixed argument list (never a shell). Differential
graphs go through ``inferno-diff-folded --normalize BASE NEW`` first, whose output is piped
into ``inferno-flamegraph``. bee's "bee" palette maps to inferno's ``java`` palette, which
colours by the same ``_[k]``/``_[j]``/``_[i]`` suffixes.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bee_contract.errors import ReportError

if TYPE_CHECKING:
    from bee_report.reporters.options import FlameOptions

FLAMEGRAPH = "inferno-flamegraph"
DIFF_FOLDED = "inferno-diff-folded"
INSTALL_HINT = "install it with `cargo install inferno`, or use --renderer builtin"
TIMEOUT_S = 600.0
XPAD = 10  # inferno's horizontal padding, pixels

_PALETTES = {"bee": "java", "hot": "hot", "mem": "mem", "io": "io", "java": "java"}


def available() -> bool:
    """Whether ``inferno-flamegraph`` is on PATH."""
    return shutil.which(FLAMEGRAPH) is not None


def require(tool: str = FLAMEGRAPH) -> str:
    """The absolute path of an inferno tool, or :class:`ReportError` saying how to get it."""
    path = shutil.which(tool)
    if path is None:
        raise ReportError(f"{tool} not found on PATH: {INSTALL_HINT}")
    return path


def flamegraph_args(options: FlameOptions) -> list[str]:
    """The ``inferno-flamegraph`` arguments for ``options`` (without the program name).

    Values are passed as ``--name=value`` so a title starting with ``-`` stays a value.
    inferno takes ``--minwidth`` as a percentage of the width (since 0.11), so bee's pixels
    are converted; ``--hash`` keeps its colours stable from run to run.
    """
    plot_width = max(options.width - 2 * XPAD, 1)
    args = [
        f"--title={options.title}",
        f"--colors={_PALETTES.get(options.colors, 'hot')}",
        "--hash",
        f"--width={options.width}",
        f"--minwidth={100.0 * options.minwidth / plot_width:.6g}",
        f"--countname={options.count_name}",
    ]
    if options.subtitle:
        args.append(f"--subtitle={options.subtitle}")
    if options.reverse:
        args.append("--reverse")
    if options.inverted:
        args.append("--inverted")
    return args


def folded_text(rows: Iterable[tuple[Sequence[str], int]]) -> str:
    """Folded lines ``frame;frame count`` for inferno; empty stacks and zero counts dropped.

    Characters the line format cannot carry are replaced: ``;`` in a name becomes ``:``
    and line breaks become spaces.
    """
    lines = []
    for frames, count in rows:
        if count > 0 and frames:
            stack = ";".join(_clean(f) for f in frames)
            lines.append(f"{stack} {count}\n")
    return "".join(lines)


def render(folded: Iterable[tuple[Sequence[str], int]], options: FlameOptions) -> str:
    """Draw folded stacks with ``inferno-flamegraph``."""
    exe = require(FLAMEGRAPH)
    return _run([exe, *flamegraph_args(options)], folded_text(folded))


def render_diff(folded: Iterable[tuple[Sequence[str], int, int]], options: FlameOptions) -> str:
    """Draw ``(frames, base, new)`` rows with ``inferno-diff-folded | inferno-flamegraph``."""
    exe = require(FLAMEGRAPH)
    diff_exe = require(DIFF_FOLDED)
    rows = list(folded)
    with tempfile.TemporaryDirectory(prefix="bee-inferno-") as tmp:
        base_path = Path(tmp, "base.folded")
        new_path = Path(tmp, "new.folded")
        base_path.write_text(folded_text((f, b) for f, b, _ in rows), encoding="utf-8")
        new_path.write_text(folded_text((f, n) for f, _, n in rows), encoding="utf-8")
        diffed = _run([diff_exe, "--normalize", str(base_path), str(new_path)], "")
    return _run([exe, *flamegraph_args(options)], diffed)


def _clean(frame: str) -> str:
    return frame.replace(";", ":").replace("\n", " ").replace("\r", " ")


def _run(argv: list[str], stdin: str) -> str:
    """Run one inferno tool; its stdout, or :class:`ReportError` with stderr's last line."""
    name = Path(argv[0]).name
    try:
        done = subprocess.run(
            argv,
            input=stdin.encode("utf-8", "replace"),
            capture_output=True,
            check=False,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ReportError(f"{name} did not finish within {TIMEOUT_S:.0f} s") from None
    except OSError as e:
        raise ReportError(f"cannot run {name}: {e.strerror or e}") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise ReportError(f"{name} failed: {last}")
    return done.stdout.decode("utf-8", "replace")

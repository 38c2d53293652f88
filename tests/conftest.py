"""Shared fixtures: building fixture programs, running the bee CLI, and BPF gating.

Tests marked `bpf` load real BPF programs. They run for real as root (CI runs as root);
elsewhere they are reported as skipped with the reason, never silently passed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bee.cli import app
from bee_report import diag

FIXTURES = Path(__file__).parent / "fixtures"
SRC = FIXTURES / "src"
REPO = Path(__file__).resolve().parent.parent


def _bpf_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (CAP_BPF/CAP_PERFMON) to load BPF programs"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "needs bcc's Python module (python3-bpfcc) in a --system-site-packages venv"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _bpf_unavailable()
    if reason is None:
        return
    for item in items:
        if "bpf" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    diag.reset()


@pytest.fixture()
def build_c(tmp_path: Path) -> Callable[..., Path]:
    """Compile a fixture C/C++ source from tests/fixtures/src into tmp_path."""

    def build(source: str, name: str | None = None, flags: tuple[str, ...] = ()) -> Path:
        src = SRC / source
        out = tmp_path / (name or src.stem)
        compiler = "g++" if src.suffix in (".cc", ".cpp") else "gcc"
        if shutil.which(compiler) is None:
            pytest.fail(f"{compiler} is required to build test fixtures")
        base = ("-O0", "-g", "-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer",
                "-fno-optimize-sibling-calls")
        subprocess.run([compiler, *base, *flags, "-o", str(out), str(src)], check=True)
        return out

    return build


@pytest.fixture()
def cli() -> Callable[..., object]:
    """Invoke the bee CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str) -> object:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def run_bee(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run `python -m bee ARGS` as a separate process (needed for BPF and signals)."""
    kwargs.setdefault("cwd", REPO)
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "bee", *map(str, args)],
        capture_output=True, text=True, **kwargs,
    )

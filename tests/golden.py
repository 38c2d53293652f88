"""The one golden-file comparison of the tests: whole files, a diff when they differ."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = FIXTURES / "golden"


def golden(path: Path | str, actual: str) -> None:
    """Compare `actual` with the golden file whole (a name is under tests/fixtures/golden).

    With BEE_REGEN_GOLDEN=1 the file is rewritten instead (and the test skipped): review
    the change with git before committing it.
    """
    path = GOLDEN / path if isinstance(path, str) else path
    if os.environ.get("BEE_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        pytest.skip(f"regenerated {path}")
    assert path.exists(), f"{path} missing: run with BEE_REGEN_GOLDEN=1 once and review it"
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(list(difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True),
            f"{path.name} (golden)", f"{path.name} (now)"))[:80])
        pytest.fail(f"{path.name} changed; if intended, rerun with BEE_REGEN_GOLDEN=1\n{diff}",
                    pytrace=False)

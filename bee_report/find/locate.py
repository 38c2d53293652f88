"""Find a recorded binary on the workstation by its build-id.

Candidates, in order, each verified by build-id before use:
1. each `--symbols` folder: `.build-id/xx/rest`, the debuginfod cache layout
   (`<build-id>/executable`), the recorded path under the folder (a sysroot), the
   file name at the folder's top, then any ELF file anywhere below it (indexed once);
2. the recorded original path.
A candidate whose build-id differs is never used (`mismatched` says which, for the
one warning the caller prints per binary).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from bee_contract.buildid import build_id_of_path, build_id_tree_path, valid_build_id
from bee_report.diag import warn

_MAX_INDEX_FILES = 200_000



def safe_recorded_path(path: str) -> bool:
    """True for an absolute path without `..`, NUL or control characters.

    Recorded paths come from untrusted files; only such paths are joined to folders.
    """
    return (path.startswith("/") and ".." not in PurePosixPath(path).parts
            and path.isprintable())


def build_id_paths(root: Path, build_id: str, suffix: str = "") -> list[Path]:
    """`.build-id/xx/rest[suffix]` under root and the debuginfod layout, for a valid id."""
    if not valid_build_id(build_id):
        return []
    return [build_id_tree_path(root, build_id, suffix)]


class Locator:
    """Finds binaries by build-id in symbol folders and at their recorded paths."""

    def __init__(self, symbol_dirs: Sequence[Path] = (), use_original_paths: bool = True) -> None:
        self.symbol_dirs = [Path(d) for d in symbol_dirs]
        self.use_original_paths = use_original_paths
        self._index: dict[str, Path] | None = None
        self._found: dict[tuple[str, str | None], Path | None] = {}
        #: Files rejected for a different build-id, by (path, build-id) looked up.
        self.mismatched: dict[tuple[str, str | None], Path] = {}

    def find(self, path: str, build_id: str | None) -> Path | None:
        """The local file for a recorded binary, or None (a warning says why when useful)."""
        key = (path, build_id)
        if key not in self._found:
            self._found[key] = self._find(path, build_id)
        return self._found[key]

    def _find(self, path: str, build_id: str | None) -> Path | None:
        if build_id is not None and not valid_build_id(build_id):
            warn(f"{path}: recorded build-id is not hex; binary not looked up")
            return None
        mismatched: list[Path] = []
        for candidate in self._candidates(path, build_id):
            if not candidate.is_file():
                continue
            got = build_id_of_path(str(candidate))
            if build_id is None or got == build_id:
                return candidate
            mismatched.append(candidate)
        if build_id is not None:
            hit = self._indexed().get(build_id)
            if hit is not None:
                return hit
        if mismatched:
            self.mismatched[(path, build_id)] = mismatched[0]
        return None

    def _candidates(self, path: str, build_id: str | None) -> Iterator[Path]:
        if not safe_recorded_path(path):
            warn(f"{path!r}: recorded path is not a plain absolute path; looked up by "
                 "build-id only")
            path = ""
        rel = path.lstrip("/")
        name = os.path.basename(path)
        for root in self.symbol_dirs:
            if build_id is not None:
                yield from build_id_paths(root, build_id)
                yield root / build_id / "executable"
            if rel:
                yield root / rel
            if name:
                yield root / name
        if self.use_original_paths and path.startswith("/"):
            yield Path(path)

    def _indexed(self) -> dict[str, Path]:
        """Build-id -> file for every ELF file below the symbol folders (built once)."""
        if self._index is None:
            self._index = {}
            seen = 0
            for root in self.symbol_dirs:
                for full in _files_below(root):
                    seen += 1
                    if seen > _MAX_INDEX_FILES:
                        warn(f"{root}: more than {_MAX_INDEX_FILES} files; index cut short")
                        return self._index
                    if full.endswith(".debug") or not os.path.isfile(full):
                        continue
                    got = build_id_of_path(full)
                    if got is not None:
                        self._index.setdefault(got, Path(full))
        return self._index


def _files_below(root: Path) -> Iterator[str]:
    """Paths of the non-folder entries below `root`, sorted per folder; iterative (a
    hostile folder may nest thousands deep), symlinked folders not entered."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                subfolders.append(entry.path)
            else:
                yield entry.path
        stack.extend(reversed(subfolders))

"""A small debuginfod client: fetch debug files and executables by build-id over HTTP.

Servers come from ``DEBUGINFOD_URLS`` (space-separated http/https URLs). A request is
``GET {url}/buildid/{build-id}/{debuginfo|executable}`` with a size limit, a timeout per
read, an overall deadline per download (a server trickling a byte per second cannot hold
a report) and a budget for all downloads of the run; redirects may only lead to
http/https. A download is written to a temporary file in ``cache_dir/debuginfod/<build-id>/``
and renamed to ``debuginfo`` (or ``executable``) only once it is complete (as long as its
Content-Length says, and an ELF file whose headers and sections all lie inside it) and its
build-id is the one asked for, so the cache only ever holds verified, complete files; a
cached file that fails these checks is dropped. A build-id no server has is remembered for
the run (negative cache); a server that cannot be reached, or is too slow, is not asked
again during the run. Offline, only the cache is used. Build-ids are validated as
lowercase hex before reaching a URL or path.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from bee_contract import __version__
from bee_contract.atomic import atomic_output
from bee_contract.buildid import build_id_of_file, build_id_of_path, valid_build_id
from bee_contract.elf import SHT_NOBITS
from bee_contract.errors import BeeError, OutputError
from bee_report.diag import warn
from bee_report.elf.elffile import ElfFile

KINDS = ("debuginfo", "executable")
DEFAULT_TIMEOUT = 10.0
DEFAULT_DEADLINE = 120.0
"""Seconds one download may take in all, however steadily its server sends."""
DEFAULT_RUN_BUDGET = 300.0
"""Seconds all downloads of one run may take together."""
MAX_DOWNLOAD_BYTES = 4 << 30
_CHUNK = 1 << 20



class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http/https URLs only."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
        headers: http.client.HTTPMessage, newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Debuginfod:
    """Fetches files by build-id from debuginfod servers into a verified local cache."""

    def __init__(
        self,
        urls: Sequence[str],
        cache_dir: Path,
        offline: bool = False,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = MAX_DOWNLOAD_BYTES,
        deadline: float = DEFAULT_DEADLINE,
        run_budget: float = DEFAULT_RUN_BUDGET,
    ) -> None:
        """`cache_dir` is bee's cache folder; downloads go to its ``debuginfod/`` part.

        `timeout` bounds each network read, `deadline` each download, `run_budget` the
        time spent downloading over the client's life (one run).
        """
        self.urls = tuple(u.rstrip("/") for u in urls if _usable_url(u))
        self.cache = Path(cache_dir) / "debuginfod"
        self.offline = offline
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.budget_left = run_budget
        self._absent: set[tuple[str, str]] = set()
        self._dead: set[str] = set()
        self._opener = urllib.request.build_opener(_HttpOnlyRedirects())

    @classmethod
    def from_environment(
        cls, cache_dir: Path, offline: bool = False, environ: Mapping[str, str] = os.environ,
    ) -> Debuginfod | None:
        """A client for ``DEBUGINFOD_URLS``, or None when it is unset or names no usable URL."""
        urls = environ.get("DEBUGINFOD_URLS", "").split()
        client = cls(urls, cache_dir, offline)
        return client if client.urls else None

    def cached(self, build_id: str, kind: str = "debuginfo") -> Path | None:
        """The verified cached file, or None (a cached file with another build-id is removed)."""
        if kind not in KINDS or not valid_build_id(build_id):
            return None
        path = self.cache / build_id / kind
        if not path.is_file():
            return None
        if build_id_of_path(str(path)) == build_id and _incomplete(path, None) is None:
            return path
        with contextlib.suppress(OSError):
            path.unlink()
        return None

    def fetch(self, build_id: str, kind: str = "debuginfo") -> Path | None:
        """The file of `kind` for `build_id`, from the cache or a server; None when absent."""
        if kind not in KINDS or not valid_build_id(build_id):
            return None
        hit = self.cached(build_id, kind)
        if hit is not None or self.offline or (build_id, kind) in self._absent:
            return hit
        for base in self.urls:
            if base in self._dead:
                continue
            if self.budget_left <= 0:
                warn("debuginfod: the download time budget of this run is spent; "
                     "no more downloads")
                return None
            got = self._download(base, build_id, kind)
            if got is not None:
                return got
        self._absent.add((build_id, kind))
        return None

    def _download(self, base: str, build_id: str, kind: str) -> Path | None:
        """One download in a worker thread, given up (socket shut, server marked dead)
        at the deadline; the worker's warnings are printed here unless it was given up."""
        attempt = _Attempt()
        deadline = min(self.deadline, self.budget_left)
        worker = threading.Thread(target=self._attempt, args=(attempt, base, build_id, kind),
                                  daemon=True, name="bee-debuginfod")
        start = time.monotonic()
        worker.start()
        worker.join(deadline)
        self.budget_left -= time.monotonic() - start
        if worker.is_alive():
            attempt.abandon()
            worker.join(self.timeout)
            self._dead.add(base)
            warn(f"debuginfod {base}: {kind} of {build_id} took more than {deadline:g} s "
                 "(server too slow); not asked again in this run")
            return None
        for message in attempt.messages:
            warn(message)
        if attempt.dead:
            self._dead.add(base)
        return attempt.result

    def _attempt(self, attempt: _Attempt, base: str, build_id: str, kind: str) -> None:
        url = f"{base}/buildid/{build_id}/{kind}"
        req = urllib.request.Request(url, headers={"User-Agent": f"bee/{__version__}"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                attempt.watch(resp)
                length = resp.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > self.max_bytes:
                    attempt.say(f"debuginfod {base}: {kind} of {build_id} is {length} bytes, "
                                f"more than {self.max_bytes}; not downloaded")
                    return
                expected = int(length) if length is not None and length.isdigit() else None
                attempt.result = self._store(attempt, base, resp, build_id, kind, expected)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code != 404:
                attempt.say(f"debuginfod {base}: HTTP {exc.code} for {kind} of {build_id}")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            attempt.say(f"debuginfod {base}: {reason}; not asked again in this run")
            attempt.dead = True

    def _store(self, attempt: _Attempt, base: str, resp: IO[bytes], build_id: str, kind: str,
               expected: int | None) -> Path | None:
        folder = self.cache / build_id
        dest = folder / kind
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(dest) as out:  # 0600; stale temporaries swept
                total = 0
                read = getattr(resp, "read1", resp.read)  # what arrived, not a full chunk
                while not attempt.abandoned and (chunk := read(_CHUNK)):
                    total += len(chunk)
                    if total > self.max_bytes:
                        attempt.say(f"debuginfod {base}: {kind} of {build_id} is more than "
                                    f"{self.max_bytes} bytes; not used")
                        raise _Refused
                    out.write(chunk)
                if attempt.abandoned:
                    raise _Refused
                out.flush()
                written = Path(f"/proc/self/fd/{out.fileno()}")  # the file before its rename
                problem = _incomplete(written, expected)
                if problem is not None:
                    attempt.say(f"debuginfod {base}: {kind} of {build_id} is incomplete "
                                f"({problem}); not used")
                    raise _Refused
                got = build_id_of_file(out)
                if got != build_id:
                    attempt.say(f"debuginfod {base}: {kind} for {build_id} has build-id "
                                f"{got or 'none'}; not used")
                    raise _Refused
        except _Refused:
            return None  # atomic_output removed the partial file
        except (OSError, OutputError) as exc:
            warn(f"debuginfod: cannot write to the cache {folder}: "
                 f"{getattr(exc, 'strerror', None) or exc}")
            return None
        return dest


class _Refused(Exception):
    """A download was refused (too big, incomplete, wrong build-id, abandoned)."""


class _Attempt:
    """One download's outcome, shared between its worker thread and the caller."""

    def __init__(self) -> None:
        self.result: Path | None = None
        self.messages: list[str] = []
        self.dead = False
        self.abandoned = False
        self._resp: IO[bytes] | None = None

    def say(self, message: str) -> None:
        self.messages.append(message)

    def watch(self, resp: IO[bytes]) -> None:
        """Remember the response, so that :meth:`abandon` can cut its connection."""
        self._resp = resp
        if self.abandoned:
            self.abandon()

    def abandon(self) -> None:
        """Stop the download: the worker sees the flag, a blocked read sees its socket shut."""
        self.abandoned = True
        sock = getattr(getattr(getattr(self._resp, "fp", None), "raw", None), "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(2)  # SHUT_RDWR wakes a recv() blocked in the worker


def _incomplete(path: Path, expected: int | None) -> str | None:
    """Why the downloaded file at `path` is not whole, or None.

    The length must be the one announced, and the file an ELF whose header tables and
    sections (NOBITS aside) all lie inside it: a file cut off anywhere loses its section
    header table (at the end) or the end of a section.
    """
    try:
        size = path.stat().st_size
        if expected is not None and size != expected:
            return f"{size} of {expected} bytes"
        with ElfFile.open(path) as elf:
            for sec in elf.sections:
                if sec.sh_type != SHT_NOBITS and sec.offset + sec.size > size:
                    return f"section {sec.name} ends past the end of the file"
    except (OSError, BeeError) as exc:
        return str(exc).removeprefix(f"{path}: ")
    return None


def _usable_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return True
    warn(f"DEBUGINFOD_URLS: {url!r} is not an http(s) URL; ignored")
    return False


__all__ = ["KINDS", "Debuginfod"]

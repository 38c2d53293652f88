"""A small debuginfod client: fetch debug files and executables by build-id over HTTP.

Servers come from ``DEBUGINFOD_URLS`` (space-separated http/https URLs). A request is
``GET {url}/buildid/{build-id}/{debuginfo|executable}`` with a timeout and a size limit;
redirects may only lead to http/https. A download is written to a temporary file in
``cache_dir/debuginfod/<build-id>/`` and renamed to ``debuginfo`` (or ``executable``) only
once its build-id is checked to be the one asked for, so the cache only ever holds
verified, complete files. A build-id no server has is remembered for the run (negative
cache); a server that cannot be reached is not asked again during the run. Offline, only
the cache is used. Build-ids are validated as lowercase hex before reaching a URL or path.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from bee_contract import __version__
from bee_contract.atomic import atomic_output
from bee_contract.buildid import build_id_of_file, build_id_of_path, valid_build_id
from bee_contract.errors import OutputError
from bee_report.diag import warn

KINDS = ("debuginfo", "executable")
DEFAULT_TIMEOUT = 10.0
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
    ) -> None:
        """`cache_dir` is bee's cache folder; downloads go to its ``debuginfod/`` part."""
        self.urls = tuple(u.rstrip("/") for u in urls if _usable_url(u))
        self.cache = Path(cache_dir) / "debuginfod"
        self.offline = offline
        self.timeout = timeout
        self.max_bytes = max_bytes
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
        if build_id_of_path(str(path)) == build_id:
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
            got = self._download(base, build_id, kind)
            if got is not None:
                return got
        self._absent.add((build_id, kind))
        return None

    def _download(self, base: str, build_id: str, kind: str) -> Path | None:
        url = f"{base}/buildid/{build_id}/{kind}"
        req = urllib.request.Request(url, headers={"User-Agent": f"bee/{__version__}"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                length = resp.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > self.max_bytes:
                    warn(f"debuginfod {base}: {kind} of {build_id} is {length} bytes, more than "
                         f"{self.max_bytes}; not downloaded")
                    return None
                return self._store(base, resp, build_id, kind)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code != 404:
                warn(f"debuginfod {base}: HTTP {exc.code} for {kind} of {build_id}")
            return None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            warn(f"debuginfod {base}: {reason}; not asked again in this run")
            self._dead.add(base)
            return None

    def _store(self, base: str, resp: IO[bytes], build_id: str, kind: str) -> Path | None:
        folder = self.cache / build_id
        dest = folder / kind
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(dest, 0o644) as out:
                total = 0
                while chunk := resp.read(_CHUNK):
                    total += len(chunk)
                    if total > self.max_bytes:
                        warn(f"debuginfod {base}: {kind} of {build_id} is more than "
                             f"{self.max_bytes} bytes; not used")
                        raise _Refused
                    out.write(chunk)
                out.flush()
                got = build_id_of_file(out)
                if got != build_id:
                    warn(f"debuginfod {base}: {kind} for {build_id} has build-id "
                         f"{got or 'none'}; not used")
                    raise _Refused
        except _Refused:
            return None
        except (OSError, OutputError) as exc:
            warn(f"debuginfod: cannot write to the cache {folder}: "
                 f"{getattr(exc, 'strerror', None) or exc}")
            return None
        return dest


class _Refused(Exception):
    """A download was refused (too big, wrong build-id); its partial file is removed."""


def _usable_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return True
    warn(f"DEBUGINFOD_URLS: {url!r} is not an http(s) URL; ignored")
    return False


__all__ = ["KINDS", "Debuginfod"]

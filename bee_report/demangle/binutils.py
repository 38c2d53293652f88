"""Symbol demangling that prints names exactly like binutils 2.40 ``addr2line -C``.

``demangle(name)`` follows the path binutils takes for ``addr2line -C`` and ``nm -C``
(``bfd_demangle`` with ``DMGL_PARAMS | DMGL_ANSI``), which is also what ``c++filt -i``
prints for a single symbol:

* leading ``.``/``$`` characters and an ``@suffix`` (``@plt``, ``@GLIBC_2.2.5``) are set
  aside, the rest is demangled and they are put back around the result;
* Rust symbols (legacy ``_ZN...17h<hash>E`` and v0 ``_R...``) are tried first, see
  :mod:`bee_report.demangle.rust` and :mod:`bee_report.demangle.rust_v0`; the legacy
  hash and crate disambiguators are hidden;
* Itanium C++ symbols (``_Z...``, ``_GLOBAL__I_...``) go to libstdc++'s ``__cxa_demangle``
  through the ``cxxfilt`` package; clone suffixes come out as ``foo() [clone .cold]``;
* anything else (C names, ``main.cold``) is returned unchanged, as is every name that
  cannot be demangled. ``demangle`` never raises.

C++ text comes from the libstdc++ loaded at run time; where its demangler differs from
binutils 2.40's copy of libiberty, libstdc++ wins (GCC 12 prints ``std::declval<T>()``
inside ``decltype`` where binutils 2.40 prints ``(std::declval<T>)()``).

Plain ``c++filt`` (without ``-i``) differs on purpose: it is verbose by default and then
also prints Rust hashes, ``[crate-disambiguator]`` tags and the long forms of ``std::``
abbreviations (``std::basic_ostream<char, ...>`` for ``std::ostream``).

Hostile input: libiberty's C++ printer is exponential in the number of back-references
(``S_``/``T_``/pack expansions), so a crafted 200-byte name can produce gigabytes of
output. Names with few back-references (an output bound of roughly ``len * 2**10``) are
demangled in-process; the rest go to a helper process with a time and memory limit,
and are returned unchanged if it gives up. Names longer than 1024 bytes are never
C++-demangled (binutils refuses them too) and names over 64 KiB are returned as given.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["demangle"]

MAX_NAME_LEN = 1 << 16
CXX_MAX_LEN = 1024  # libiberty rejects longer names (2 * len > DEMANGLE_RECURSION_LIMIT)
CACHE_SIZE = 1 << 16
MAX_INLINE_REFS = 10
SANDBOX_TIMEOUT = 1.0
SANDBOX_STARTUP = 10.0
SANDBOX_MAX_OUTPUT = 1 << 18
SANDBOX_MEMORY = 1 << 30

_GLOBAL_CTOR = re.compile(r"_GLOBAL_[._$][DI]_")
_BACKREF = re.compile(r"[ST][0-9A-Z]*_")
# Pack expansions (Dp, sp), sizeof...(pack) and fold expressions print a pattern once per
# pack element, which multiplies with back-references.
_MULTIPLYING = re.compile(r"Dp|sp|sP|f[lrLR]")

Demangler = Callable[[bytes], bytes]


def demangle(name: str) -> str:
    """Return ``name`` demangled as binutils ``addr2line -C`` would print it.

    Names that are not mangled, cannot be demangled, or look hostile are returned
    unchanged; the function never raises. Results are cached (bounded LRU).
    """
    if len(name) > MAX_NAME_LEN or "\x00" in name:
        return name
    try:
        return _demangle_cached(name)
    except Exception:  # defensive: a demangler must never break symbolization
        return name


@functools.lru_cache(maxsize=CACHE_SIZE)
def _demangle_cached(name: str) -> str:
    core = name.lstrip(".$")
    prefix = name[: len(name) - len(core)]
    core, at, suffix = core.partition("@")
    result = _demangle_rust(core)
    if result is None:
        result = _demangle_cxx(core)
    if result is None:
        return name
    return prefix + result + at + suffix


def _demangle_rust(core: str) -> str | None:
    # Rust's demanglers are imported on first use (start-up of `bee report` on C code).
    demangler: Callable[[str], str | None]
    if core.startswith("_R"):
        from bee_report.demangle.rust_v0 import demangle_rust_v0

        demangler, rest = demangle_rust_v0, core[2:]
    elif core.startswith("_ZN"):
        from bee_report.demangle.rust import demangle_rust_legacy

        demangler, rest = demangle_rust_legacy, core[3:]
    else:
        return None
    from bee_report.demangle.rust import Malformed

    try:
        return demangler(rest)
    except (Malformed, RecursionError):
        return None


def _demangle_cxx(core: str) -> str | None:
    if not (core.startswith("_Z") or _GLOBAL_CTOR.match(core)) or "\n" in core:
        return None
    demangler = _load_cxxfilt()
    if demangler is None:
        return None
    raw = core.encode("utf-8", "surrogateescape")
    if len(raw) > CXX_MAX_LEN:
        return None
    if _is_risky(core):
        result = _SANDBOX.demangle(raw)
    else:
        try:
            result = demangler(raw)
        except Exception:  # cxxfilt.InvalidName and friends
            result = None
    if result is None:
        return None
    text = result.decode("utf-8", "surrogateescape")
    if not text.isascii() and _has_surrogates(text) and not _has_surrogates(core):
        return None  # the demangler split a multi-byte character
    return text


def _is_risky(core: str) -> bool:
    """Whether printing ``core`` might take more than ~1000x its length."""
    refs = len(_BACKREF.findall(core))
    return refs > MAX_INLINE_REFS or (refs > 0 and _MULTIPLYING.search(core) is not None)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@functools.cache
def _load_cxxfilt() -> Demangler | None:
    """Return cxxfilt's ``__cxa_demangle`` wrapper, or None if it cannot be used."""
    try:
        import cxxfilt

        impl = cxxfilt.default_demangler
        if impl.demangleb(b"_Z1fv", external_only=False) != b"f()":
            return None
    except Exception:  # not installed, libstdc++ missing or not loadable
        return None

    def run(raw: bytes) -> bytes:
        return bytes(impl.demangleb(raw, external_only=False))

    return run


# --------------------------------------------------------------------------- sandbox

_WORKER = """
import sys
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
except Exception:
    pass
try:
    import cxxfilt
    impl = cxxfilt.default_demangler
except Exception:
    impl = None
out = sys.stdout.buffer
out.write(b"ready\\n")
out.flush()
for line in sys.stdin.buffer:
    try:
        res = impl.demangleb(line[:-1], external_only=False)
        ok = len(res) <= {max_output} and b"\\n" not in res
    except Exception:
        ok = False
    out.write(b"+" + res + b"\\n" if ok else b"-\\n")
    out.flush()
"""


class _Sandbox:
    """A helper process running ``__cxa_demangle`` under a time and memory limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = 0
        self._unavailable = False

    def demangle(self, raw: bytes) -> bytes | None:
        """Demangle ``raw`` (at most ``CXX_MAX_LEN`` bytes, no newline) or give None."""
        with self._lock:
            proc = self._start()
            if proc is None or proc.stdin is None or proc.stdout is None:
                return None
            try:
                proc.stdin.write(raw + b"\n")
                line = _read_line(proc.stdout.fileno(), SANDBOX_TIMEOUT)
            except (OSError, ValueError):
                line = None
            if line is None:
                self.close()
                return None
            return line[1:] if line.startswith(b"+") else None

    def close(self) -> None:
        """Stop the helper process (it is restarted on demand)."""
        proc, self._proc = self._proc, None
        if proc is None or self._owner != os.getpid():
            return
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    def _start(self) -> subprocess.Popen[bytes] | None:
        if self._proc is not None and self._owner != os.getpid():
            self._proc = None  # inherited across fork(): the worker belongs to the parent
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self.close()
        if self._unavailable or not sys.executable:
            return None
        code = _WORKER.format(memory=SANDBOX_MEMORY, max_output=SANDBOX_MAX_OUTPUT)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                bufsize=0,
            )
        except OSError:
            self._unavailable = True
            return None
        self._owner = os.getpid()
        assert self._proc.stdout is not None
        if _read_line(self._proc.stdout.fileno(), SANDBOX_STARTUP) != b"ready":
            self.close()
            self._unavailable = True  # do not stall every later call on a broken helper
            return None
        return self._proc


def _read_line(fd: int, timeout: float) -> bytes | None:
    """Read one newline-terminated reply from ``fd``; None on timeout, EOF or excess."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)[:-1]
        if size > SANDBOX_MAX_OUTPUT + 2:
            return None


_SANDBOX = _Sandbox()
atexit.register(_SANDBOX.close)

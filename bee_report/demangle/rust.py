"""Rust legacy symbol demangling (``_ZN...17h<hash>E``) and helpers shared with v0.

The output reproduces GNU libiberty's ``rust-demangle.c`` as shipped with binutils 2.40,
in the non-verbose mode used by ``addr2line -C``, ``nm -C`` and ``c++filt -i``: the
legacy hash is hidden. The v0 grammar lives in :mod:`bee_report.demangle.rust_v0`; this
module also holds its punycode decoder and the :class:`Malformed` signal.
"""

from __future__ import annotations

import string

__all__ = ["MAX_PUNYCODE", "Malformed", "decode_punycode", "demangle_rust_legacy"]

# Longest punycode part decoded (insertion is quadratic; real identifiers are short).
MAX_PUNYCODE = 1024

_LEGACY_CHARS = frozenset(string.ascii_letters + string.digits + "_$.:@")
_DIGITS = frozenset(string.digits)
_LOWER_HEX = "0123456789abcdef"
_LEGACY_CODES = {"SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")"}


class Malformed(Exception):
    """The symbol is not valid (or exceeds a safety bound)."""


# --------------------------------------------------------------------------- legacy


def _legacy_ident(sym: str, pos: int, end: int) -> tuple[int, int]:
    """Parse a decimal length-prefixed identifier; return (start, end) of its text."""
    if pos >= end or sym[pos] not in _DIGITS:
        raise Malformed
    length = int(sym[pos])
    pos += 1
    if length:
        while pos < end and sym[pos] in _DIGITS:
            length = length * 10 + int(sym[pos])
            pos += 1
            if length > end:
                raise Malformed
    if pos + length > end:
        raise Malformed
    return pos, pos + length


def _is_legacy_hash(ident: str) -> bool:
    if len(ident) != 17 or ident[0] != "h":
        return False
    digits = ident[1:]
    return all(c in _LOWER_HEX for c in digits) and len(set(digits)) >= 5


def _legacy_escape(text: str, i: int) -> tuple[str, int] | None:
    """Decode the ``$...$`` escape at ``text[i]``; return (char, length) or None."""
    rest = len(text) - i - 1  # characters after the '$'
    if rest < 2:
        return None
    e = i + 1
    char: str | None = None
    esc_len = 0
    if text[e] == "C":
        char, esc_len = ",", 1
    elif rest > 2:
        esc_len = 2
        char = _LEGACY_CODES.get(text[e : e + 2])
        if char is None and text[e] == "u" and rest > 3:
            esc_len = 3
            hi, lo = _LOWER_HEX.find(text[e + 1]), _LOWER_HEX.find(text[e + 2])
            if hi < 0 or lo < 0 or hi > 7 or hi * 16 + lo < 0x20:
                return None
            char = chr(hi * 16 + lo)
    if char is None or rest <= esc_len or text[e + esc_len] != "$":
        return None
    return char, 2 + esc_len


def _legacy_unescape(ident: str) -> str:
    if ident.startswith("_$"):
        ident = ident[1:]
    out: list[str] = []
    i = 0
    while i < len(ident):
        c = ident[i]
        if c == "$":
            decoded = _legacy_escape(ident, i)
            if decoded is None:  # unknown escape: the rest is printed verbatim
                out.append(ident[i:])
                break
            out.append(decoded[0])
            i += decoded[1]
        elif c == ".":
            if ident.startswith("..", i):
                out.append("::")
                i += 2
            else:
                out.append(".")
                i += 1
        else:
            j = i
            while j < len(ident) and ident[j] not in "$.":
                j += 1
            out.append(ident[i:j])
            i = j
    return "".join(out)


def demangle_rust_legacy(sym: str) -> str | None:
    """Demangle the part of a legacy symbol after ``_ZN``; None if it is not Rust."""
    if any(c not in _LEGACY_CHARS for c in sym):
        return None
    # Drop a ".suffix" after the final 'E' (e.g. ".llvm.1234").
    end = len(sym)
    dot_suffix = True
    while end > 0 and not (dot_suffix and sym[end - 1] == "E"):
        dot_suffix = sym[end - 1] == "."
        end -= 1
    if end == 0:
        return None
    end -= 1
    if not (end > 19 and sym.startswith("17h", end - 19)):
        return None
    idents: list[str] = []
    pos = 0
    while True:
        start, pos = _legacy_ident(sym, pos, end)
        if start == pos:
            return None
        idents.append(sym[start:pos])
        if pos >= end:
            break
    if not _is_legacy_hash(idents[-1]):
        return None
    return "::".join(_legacy_unescape(ident) for ident in idents[:-1])


# --------------------------------------------------------------------------- punycode


def decode_punycode(ascii_part: str, code: str) -> str | None:
    """Decode Rust's punycode; None means "print nothing" (libiberty on truncated input)."""
    if len(code) > MAX_PUNYCODE:
        raise Malformed
    out = list(ascii_part)
    bias, damp, i, char, pos = 72, 700, 0, 0x80, 0
    while pos < len(code):
        delta, w, k = 0, 1, 0
        while True:
            k += 36
            t = min(max(k - bias, 1), 26)
            if pos >= len(code):
                return None
            c = code[pos]
            pos += 1
            if "a" <= c <= "z":
                d = ord(c) - ord("a")
            elif "0" <= c <= "9":
                d = 26 + ord(c) - ord("0")
            else:
                raise Malformed
            delta += d * w
            w *= 36 - t
            if d < t:
                break
        i += delta
        char += i // (len(out) + 1)
        i %= len(out) + 1
        if char > 0x10FFFF or 0xD800 <= char <= 0xDFFF:
            raise Malformed
        out.insert(i, chr(char))
        if pos == len(code):
            break
        i += 1
        delta //= damp
        damp = 2
        delta += delta // len(out)
        k = 0
        while delta > 455:  # ((36 - 1) * 26) // 2
            delta //= 35
            k += 36
        bias = k + (36 * delta) // (delta + 38)
    return "".join(out)

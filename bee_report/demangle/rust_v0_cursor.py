"""The cursor the Rust v0 demangler reads with: position, output, bounds and token readers.

:class:`V0Cursor` is the state of one demangling run (the symbol, the read position, the
output, whether output is being skipped, the nesting depth, the bound lifetimes and the
remaining work budget) and the low-level readers the grammar in
:mod:`bee_report.demangle.rust_v0` is built from: base-62 integers, hex nibbles,
identifiers (ASCII or punycode), lifetimes, binders, back-references and ``E``-terminated
lists. Every bound (:data:`MAX_DEPTH`, :data:`WORK_PER_CHAR`) raises :class:`Malformed`
when exceeded.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import TypeVar

from bee_report.demangle.rust import Malformed, decode_punycode

__all__ = ["MAX_DEPTH", "WORK_BASE", "WORK_PER_CHAR", "V0Cursor"]

# Python frames the parser may stack up. libiberty allows 1024 of its own levels, but
# real symbols nest far less deeply and Python's default recursion limit is 1000.
MAX_DEPTH = 200
# Work budget per input character: back-references legitimately re-print earlier parts
# (rustc's own symbols stay under 4x), but crafted ones could expand exponentially.
WORK_PER_CHAR = 64
WORK_BASE = 4096

_DIGITS = frozenset(string.digits)
_BASE62 = string.digits + string.ascii_lowercase + string.ascii_uppercase
_LOWER_HEX = "0123456789abcdef"
_MASK64 = (1 << 64) - 1

_T = TypeVar("_T")


def _lifetime_name(depth: int) -> str:
    return "'" + chr(ord("a") + depth) if depth < 26 else f"'_{depth}"


class V0Cursor:
    """State and low-level readers of one v0 demangling run (see the module docstring)."""

    def __init__(self, sym: str) -> None:
        dot = sym.find(".")  # v0 symbols may carry '.' suffixes, which are ignored
        self.sym = sym if dot < 0 else sym[:dot]
        self.pos = 0
        self.out: list[str] = []
        self.skipping = False
        self.depth = 0
        self.bound_lifetimes = 0
        self.work = WORK_BASE + WORK_PER_CHAR * len(self.sym)

    # ----- low-level helpers

    def enter(self) -> None:
        """Account one more nesting level and unit of work; Malformed past the limits."""
        self.depth += 1
        self.work -= 1
        if self.depth > MAX_DEPTH or self.work < 0:
            raise Malformed

    def emit(self, text: str) -> None:
        """Append output text (unless skipping), charging its length as work."""
        if not self.skipping:
            self.work -= len(text)
            if self.work < 0:
                raise Malformed
            self.out.append(text)

    def eat(self, c: str) -> bool:
        """Consume `c` if it is next; report whether it was."""
        if self.pos < len(self.sym) and self.sym[self.pos] == c:
            self.pos += 1
            return True
        return False

    def next(self) -> str:
        """Consume and return the next character; Malformed at the end."""
        if self.pos >= len(self.sym):
            raise Malformed
        self.pos += 1
        return self.sym[self.pos - 1]

    def integer_62(self) -> int:
        """A v0 base-62 number terminated by `_`."""
        if self.eat("_"):
            return 0
        x = 0
        while not self.eat("_"):
            digit = _BASE62.find(self.next())
            if digit < 0:
                raise Malformed
            x = (x * 62 + digit) & _MASK64
        return (x + 1) & _MASK64

    def opt_integer_62(self, tag: str) -> int:
        """A base-62 number after `tag` plus one, or 0 when `tag` is absent."""
        return (1 + self.integer_62()) & _MASK64 if self.eat(tag) else 0

    def hex_nibbles(self) -> tuple[int, str]:
        """Lowercase hex digits up to `_`: their value and their text."""
        start, value = self.pos, 0
        while not self.eat("_"):
            digit = _LOWER_HEX.find(self.next())
            if digit < 0:
                raise Malformed
            value = ((value << 4) | digit) & _MASK64
        return value, self.sym[start : self.pos - 1]

    def ident(self) -> tuple[str, str | None]:
        """Parse an identifier into (ascii part, punycode part or None)."""
        is_punycode = self.eat("u")
        c = self.next()
        if c not in _DIGITS:
            raise Malformed
        length = int(c)
        while c != "0" and self.pos < len(self.sym) and self.sym[self.pos] in _DIGITS:
            length = length * 10 + int(self.next())
            if length > len(self.sym):
                raise Malformed
        self.eat("_")
        start = self.pos
        if start + length > len(self.sym):
            raise Malformed
        self.pos += length
        text = self.sym[start : self.pos]
        if not is_punycode:
            return text, None
        sep = text.rfind("_")
        if sep == len(text) - 1 or not text:
            raise Malformed
        return text[: max(sep, 0)], text[sep + 1 :]

    def emit_ident(self, ident: tuple[str, str | None]) -> None:
        """Print an identifier, decoding its punycode part if it has one."""
        ascii_part, code = ident
        if self.skipping:
            return
        if code is None:
            self.emit(ascii_part)
            return
        self.work -= len(code)  # decoding costs more than its output suggests
        decoded = decode_punycode(ascii_part, code)
        if decoded is not None:
            self.emit(decoded)

    def lifetime(self, index: int) -> None:
        """Print a lifetime by its de Bruijn index ('_ for the erased one)."""
        if index == 0:
            self.emit("'_")
        else:
            self.emit(_lifetime_name((self.bound_lifetimes - index) & _MASK64))

    def binder(self) -> None:
        """Read a `for<...>` binder and print the lifetimes it introduces."""
        count = self.opt_integer_62("G")
        if count > self.work:
            raise Malformed
        if count:
            first = self.bound_lifetimes
            self.bound_lifetimes += count
            names = (_lifetime_name(depth) for depth in range(first, first + count))
            self.emit("for<" + ", ".join(names) + "> ")

    def follow(self, parse: Callable[[], _T]) -> _T | None:
        """Parse a back-reference and run ``parse`` at its target (not while skipping)."""
        target = self.integer_62()
        if self.skipping:
            return None
        saved, self.pos = self.pos, target
        result = parse()
        self.pos = saved
        return result

    def seq(self, separator: str, item: Callable[[], object]) -> int:
        """Parse items up to an 'E' terminator, printing separators; return the count."""
        count = 0
        while not self.eat("E"):
            if count:
                self.emit(separator)
            item()
            count += 1
        return count

"""Rust v0 (``_R...``) symbol demangling, printed like binutils 2.40 (libiberty).

The parser mirrors the structure of libiberty's ``rust-demangle.c`` in its non-verbose
mode (``addr2line -C``): crate disambiguators and const types are hidden, closures print
as ``{closure#N}``, identifiers may be punycode, and libiberty's quirks are kept (a
const over 64 bits prints as ``0x`` + its digits shifted by one, lifetimes unbound by a
binder print as ``'_<2**64 - n>``, back-references are not followed while skipping).

Hostile input is bounded: Python frames (``MAX_DEPTH``), total work (``WORK_PER_CHAR``
per input character, which caps what back-references can expand to), binder sizes and
punycode lengths (see :func:`bee_report.demangle_rust.decode_punycode`). Exceeding a
bound counts as malformed: the caller keeps the raw name.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import TypeVar

from bee_report.demangle_rust import Malformed, decode_punycode

__all__ = ["MAX_DEPTH", "WORK_PER_CHAR", "demangle_rust_v0"]

# Python frames the parser may stack up. libiberty allows 1024 of its own levels, but
# real symbols nest far less deeply and Python's default recursion limit is 1000.
MAX_DEPTH = 200
# Work budget per input character: back-references legitimately re-print earlier parts
# (rustc's own symbols stay under 4x), but crafted ones could expand exponentially.
WORK_PER_CHAR = 64
WORK_BASE = 4096

_CHARS = frozenset(string.ascii_letters + string.digits + "_")
_DIGITS = frozenset(string.digits)
_BASE62 = string.digits + string.ascii_lowercase + string.ascii_uppercase
_LOWER_HEX = "0123456789abcdef"
_MASK64 = (1 << 64) - 1
_BASIC_TYPES = {
    "b": "bool", "c": "char", "e": "str", "u": "()", "a": "i8", "s": "i16", "l": "i32",
    "x": "i64", "n": "i128", "i": "isize", "h": "u8", "t": "u16", "m": "u32", "y": "u64",
    "o": "u128", "j": "usize", "f": "f32", "d": "f64", "z": "!", "p": "_", "v": "...",
}  # fmt: skip
_CHAR_ESCAPES = {0x09: "\\t", 0x0D: "\\r", 0x0A: "\\n"}

_T = TypeVar("_T")


def demangle_rust_v0(sym: str) -> str:
    """Demangle the part of a v0 symbol after ``_R``; raise :class:`Malformed` if invalid."""
    return _V0(sym).run()


def _abi_text(abi: str) -> str:
    """Re-join ABI name parts with '-' like libiberty (which skips a char after each)."""
    out: list[str] = []
    i = 0
    while i < len(abi):
        if abi[i] == "_":
            out.append(abi[:i] + "-")
            abi = abi[i + 1 :]
            i = 1  # libiberty resets its index to 0 and then increments it
            continue
        i += 1
    out.append(abi)
    return "".join(out)


def _lifetime_name(depth: int) -> str:
    return "'" + chr(ord("a") + depth) if depth < 26 else f"'_{depth}"


class _V0:
    """Recursive-descent printer for the v0 grammar."""

    def __init__(self, sym: str) -> None:
        dot = sym.find(".")  # v0 symbols may carry '.' suffixes, which are ignored
        self.sym = sym if dot < 0 else sym[:dot]
        self.pos = 0
        self.out: list[str] = []
        self.skipping = False
        self.depth = 0
        self.bound_lifetimes = 0
        self.work = WORK_BASE + WORK_PER_CHAR * len(self.sym)

    def run(self) -> str:
        sym = self.sym
        if not sym or not ("A" <= sym[0] <= "Z") or any(c not in _CHARS for c in sym):
            raise Malformed
        self.path(True)
        if self.pos < len(sym):  # the instantiating crate is parsed but not printed
            self.skipping = True
            self.path(False)
        if self.pos != len(sym):
            raise Malformed
        return "".join(self.out)

    # ----- low-level helpers

    def enter(self) -> None:
        self.depth += 1
        self.work -= 1
        if self.depth > MAX_DEPTH or self.work < 0:
            raise Malformed

    def emit(self, text: str) -> None:
        if not self.skipping:
            self.work -= len(text)
            if self.work < 0:
                raise Malformed
            self.out.append(text)

    def eat(self, c: str) -> bool:
        if self.pos < len(self.sym) and self.sym[self.pos] == c:
            self.pos += 1
            return True
        return False

    def next(self) -> str:
        if self.pos >= len(self.sym):
            raise Malformed
        self.pos += 1
        return self.sym[self.pos - 1]

    def integer_62(self) -> int:
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
        return (1 + self.integer_62()) & _MASK64 if self.eat(tag) else 0

    def hex_nibbles(self) -> tuple[int, str]:
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
        if index == 0:
            self.emit("'_")
        else:
            self.emit(_lifetime_name((self.bound_lifetimes - index) & _MASK64))

    def binder(self) -> None:
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

    # ----- grammar

    def path(self, in_value: bool) -> None:
        self.enter()
        tag = self.next()
        if tag == "C":
            self.opt_integer_62("s")
            self.emit_ident(self.ident())
        elif tag == "N":
            ns = self.next()
            if not ("a" <= ns <= "z" or "A" <= ns <= "Z"):
                raise Malformed
            self.path(in_value)
            dis = self.opt_integer_62("s")
            name = self.ident()
            has_name = bool(name[0]) or name[1] is not None
            if "A" <= ns <= "Z":  # special namespaces: closures, shims, ...
                self.emit("::{" + {"C": "closure", "S": "shim"}.get(ns, ns))
                if has_name:
                    self.emit(":")
                    self.emit_ident(name)
                self.emit(f"#{dis}}}")
            elif has_name:
                self.emit("::")
                self.emit_ident(name)
        elif tag in "MXY":
            if tag != "Y":  # the impl's own path is not printed
                self.opt_integer_62("s")
                was_skipping, self.skipping = self.skipping, True
                self.path(in_value)
                self.skipping = was_skipping
            self.emit("<")
            self.type()
            if tag != "M":
                self.emit(" as ")
                self.path(False)
            self.emit(">")
        elif tag == "I":
            self.path(in_value)
            self.emit("::<" if in_value else "<")
            self.seq(", ", self.generic_arg)
            self.emit(">")
        elif tag == "B":
            self.follow(lambda: self.path(in_value))
        else:
            raise Malformed
        self.depth -= 1

    def generic_arg(self) -> None:
        if self.eat("L"):
            self.lifetime(self.integer_62())
        elif self.eat("K"):
            self.const()
        else:
            self.type()

    def type(self) -> None:
        tag = self.next()
        basic = _BASIC_TYPES.get(tag)
        if basic is not None:
            self.emit(basic)
            return
        self.enter()
        if tag in "RQ":
            self.emit("&")
            if self.eat("L"):
                lifetime = self.integer_62()
                if lifetime:
                    self.lifetime(lifetime)
                    self.emit(" ")
            if tag == "Q":
                self.emit("mut ")
            self.type()
        elif tag in "PO":
            self.emit("*const " if tag == "P" else "*mut ")
            self.type()
        elif tag in "AS":
            self.emit("[")
            self.type()
            if tag == "A":
                self.emit("; ")
                self.const()
            self.emit("]")
        elif tag == "T":
            self.emit("(")
            self.emit(",)" if self.seq(", ", self.type) == 1 else ")")
        elif tag == "F":
            self.fn_type()
        elif tag == "D":
            self.dyn_type()
        elif tag == "B":
            self.follow(self.type)
        else:
            self.pos -= 1  # the tag starts a path
            self.path(False)
        self.depth -= 1

    def fn_type(self) -> None:
        saved_lifetimes = self.bound_lifetimes
        self.binder()
        if self.eat("U"):
            self.emit("unsafe ")
        if self.eat("K"):
            if self.eat("C"):
                abi = "C"
            else:
                abi, code = self.ident()
                if not abi or code is not None:
                    raise Malformed
            self.emit('extern "' + _abi_text(abi) + '" ')
        self.emit("fn(")
        self.seq(", ", self.type)
        self.emit(")")
        if not self.eat("u"):
            self.emit(" -> ")
            self.type()
        self.bound_lifetimes = saved_lifetimes

    def dyn_type(self) -> None:
        self.emit("dyn ")
        saved_lifetimes = self.bound_lifetimes
        self.binder()
        self.seq(" + ", self.dyn_trait)
        self.bound_lifetimes = saved_lifetimes
        if not self.eat("L"):
            raise Malformed
        lifetime = self.integer_62()
        if lifetime:
            self.emit(" + ")
            self.lifetime(lifetime)

    def dyn_trait(self) -> None:
        is_open = self.path_maybe_open_generics()
        while self.eat("p"):
            self.emit(", " if is_open else "<")
            is_open = True
            self.emit_ident(self.ident())
            self.emit(" = ")
            self.type()
        if is_open:
            self.emit(">")

    def path_maybe_open_generics(self) -> bool:
        """Print a trait path, leaving its generic argument list open (no '>')."""
        self.enter()
        is_open = False
        if self.eat("B"):
            is_open = bool(self.follow(self.path_maybe_open_generics))
        elif self.eat("I"):
            self.path(False)
            self.emit("<")
            is_open = True
            self.seq(", ", self.generic_arg)
        else:
            self.path(False)
        self.depth -= 1
        return is_open

    def const(self) -> None:
        self.enter()
        if self.eat("B"):
            self.follow(self.const)
            self.depth -= 1
            return
        tag = self.next()
        if tag == "p":
            self.emit("_")
        elif tag in "htmyoj":
            self.const_uint()
        elif tag in "aslxni":
            if self.eat("n"):
                self.emit("-")
            self.const_uint()
        elif tag == "b":
            value, digits = self.hex_nibbles()
            if len(digits) != 1 or value > 1:
                raise Malformed
            self.emit("true" if value else "false")
        elif tag == "c":
            value, digits = self.hex_nibbles()
            if not digits or len(digits) > 8:
                raise Malformed
            text = _CHAR_ESCAPES.get(value)
            if text is None:
                text = chr(value) if 0x20 < value < 0x7E else f"\\u{{{value:x}}}"
            self.emit("'" + text + "'")
        else:
            raise Malformed
        self.depth -= 1

    def const_uint(self) -> None:
        value, digits = self.hex_nibbles()
        if len(digits) > 16:
            # libiberty prints the digits one position late: the first one is dropped
            # and the terminating '_' is included.
            self.emit("0x" + self.sym[self.pos - len(digits) : self.pos])
        elif digits:
            self.emit(str(value))
        else:
            raise Malformed

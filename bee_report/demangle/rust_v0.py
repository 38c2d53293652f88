"""Rust v0 (``_R...``) symbol demangling, printed like binutils 2.40 (libiberty).

The parser mirrors the structure of libiberty's ``rust-demangle.c`` in its non-verbose
mode (``addr2line -C``): crate disambiguators and const types are hidden, closures print
as ``{closure#N}``, identifiers may be punycode, and libiberty's quirks are kept (a
const over 64 bits prints as ``0x`` + its digits shifted by one, lifetimes unbound by a
binder print as ``'_<2**64 - n>``, back-references are not followed while skipping).

Hostile input is bounded: Python frames (``MAX_DEPTH``), total work (``WORK_PER_CHAR``
per input character, which caps what back-references can expand to), binder sizes and
punycode lengths (see :func:`bee_report.demangle.rust.decode_punycode`). Exceeding a
bound counts as malformed: the caller keeps the raw name.

This module holds the grammar (:class:`_V0`); the bounds and the low-level readers it is
built on (integers, identifiers, back-references, ...) are in
:mod:`bee_report.demangle.rust_v0_cursor`.
"""

from __future__ import annotations

import string

from bee_report.demangle.rust import Malformed
from bee_report.demangle.rust_v0_cursor import V0Cursor

__all__ = ["demangle_rust_v0"]

_CHARS = frozenset(string.ascii_letters + string.digits + "_")
_BASIC_TYPES = {
    "b": "bool", "c": "char", "e": "str", "u": "()", "a": "i8", "s": "i16", "l": "i32",
    "x": "i64", "n": "i128", "i": "isize", "h": "u8", "t": "u16", "m": "u32", "y": "u64",
    "o": "u128", "j": "usize", "f": "f32", "d": "f64", "z": "!", "p": "_", "v": "...",
}  # fmt: skip
_CHAR_ESCAPES = {0x09: "\\t", 0x0D: "\\r", 0x0A: "\\n"}


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


class _V0(V0Cursor):
    """Recursive-descent printer for the v0 grammar."""

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

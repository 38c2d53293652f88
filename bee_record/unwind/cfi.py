"""Decode DWARF call-frame information (.eh_frame, .debug_frame) into unwind rows.

A row says, from its address until the next row's, how to find the caller's frame on
x86-64: the CFA (canonical frame address) as RSP or RBP plus an offset, or the PLT rule,
or the signal-frame rule; where RBP was saved (CFA + offset, or unchanged); the return
address is always at CFA - 8. Rules the BPF unwinder cannot apply become KIND_NONE rows,
where it falls back to the frame pointer. The decoder keeps only what the rows need
(CFA, RBP, the return-address column), so it runs the CFA programs much faster than a
general DWARF library: no objects per instruction, CIEs decoded once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bee_contract.elf import read_sleb128, read_uleb128

#: Row kinds, mirrored in bpf/unwind.c.
KIND_NONE = 0  # no usable rule here: fall back to the frame pointer
KIND_CFA_RSP = 1  # CFA = RSP + cfa_off
KIND_CFA_RBP = 2  # CFA = RBP + cfa_off
KIND_PLT = 3  # CFA = RSP + cfa_off + ((RIP & 15) >= aux ? 8 : 0)
KIND_SIGNAL = 4  # a signal trampoline (__restore_rt): registers are in the ucontext at RSP
KIND_END = 5  # the return address is undefined: outermost frame (e.g. _start)

# DWARF register numbers on x86-64.
_RBP = 6
_RSP = 7
_RIP = 16

_SINT = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}
_UINT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}

Rule = tuple[int, int, int, int]  # (kind, cfa_off, rbp_off, aux)
Row = tuple[int, int, int, int, int]  # (pc, kind, cfa_off, rbp_off, aux)


class CfiError(ValueError):
    """Malformed call-frame information."""


@dataclass(slots=True)
class _Cie:
    code_align: int
    data_align: int
    ra_reg: int
    fde_enc: int
    lsda_enc: int
    has_z: bool
    signal: bool
    address_size: int
    initial: _State | None
    instructions: bytes


@dataclass(slots=True)
class _State:
    cfa_reg: int  # -1: expression (see cfa_kind)
    cfa_off: int
    cfa_kind: int  # KIND_CFA_RSP/RBP when a register rule, else KIND_PLT / KIND_NONE
    plt_aux: int
    rbp_off: int  # 0: unchanged
    ra_undefined: bool

    def copy(self) -> _State:
        return _State(self.cfa_reg, self.cfa_off, self.cfa_kind, self.plt_aux, self.rbp_off,
                      self.ra_undefined)

    def rule(self, signal: bool) -> Rule:
        if signal:
            return (KIND_SIGNAL, 0, 0, 0)
        if self.ra_undefined:
            return (KIND_END, 0, 0, 0)
        kind = self.cfa_kind
        if kind == KIND_PLT:
            if self.cfa_off % 8 or not 0 <= self.cfa_off < 8 << 16:
                return (KIND_NONE, 0, 0, 0)
            return (KIND_PLT, self.cfa_off, 0, self.plt_aux)
        if kind == KIND_NONE or self.cfa_off % 8 or not 0 <= self.cfa_off < 8 << 16:
            return (KIND_NONE, 0, 0, 0)  # rows keep the CFA offset in units of 8 bytes
        rbp = self.rbp_off
        if rbp % 8 or not -1024 <= rbp <= 1016:
            return (KIND_NONE, 0, 0, 0)  # rows keep RBP's slot in units of 8 bytes
        return (kind, self.cfa_off, rbp, 0)


def _pointer(data: bytes, pos: int, enc: int, section_addr: int) -> tuple[int, int]:
    """Decode a DW_EH_PE-encoded pointer at `pos`; returns (value, next pos)."""
    if enc == 0xFF:
        raise CfiError("omitted pointer")
    fmt = enc & 0x0F
    start = pos
    if fmt == 0x00:
        value = struct.unpack_from("<Q", data, pos)[0]
        pos += 8
    elif fmt == 0x01:
        value, pos = read_uleb128(data, pos)
    elif fmt == 0x09:
        value, pos = read_sleb128(data, pos)
    else:
        size = {0x02: 2, 0x03: 4, 0x04: 8, 0x0A: 2, 0x0B: 4, 0x0C: 8}.get(fmt)
        if size is None:
            raise CfiError(f"pointer encoding {enc:#x}")
        value = struct.unpack_from((_SINT if fmt & 0x08 else _UINT)[size], data, pos)[0]
        pos += size
    app = enc & 0x70
    if app == 0x10:  # pcrel
        value += section_addr + start
    elif app not in (0x00, 0x30):  # absolute or datarel (unused for code addresses)
        raise CfiError(f"pointer application {enc:#x}")
    return value & 0xFFFFFFFFFFFFFFFF, pos


def _plt_expression(expr: bytes) -> tuple[int, int] | None:
    """(rsp offset, threshold) when `expr` is the PLT CFA rule, else None.

    The rule is `rsp + N + ((rip & 15) >= K ? 8 : 0)`, written as
    DW_OP_breg7 N; DW_OP_breg16 0; DW_OP_lit15; DW_OP_and; DW_OP_litK; DW_OP_ge;
    DW_OP_lit3; DW_OP_shl; DW_OP_plus.
    """
    try:
        if not expr or expr[0] != 0x77:
            return None
        off, pos = read_sleb128(expr, 1)
        if expr[pos] != 0x80:
            return None
        zero, pos = read_sleb128(expr, pos + 1)
        tail = expr[pos:]
    except IndexError:
        return None
    if zero != 0 or len(tail) != 7 or tail[0] != 0x3F or tail[1] != 0x1A:
        return None
    if not 0x30 <= tail[2] <= 0x4F or tail[3:] != b"\x2a\x33\x24\x22":
        return None
    return off, tail[2] - 0x30


def _run(cie: _Cie, code: bytes, state: _State, initial: _State, pc: int, end: int,
         rows: list[Row] | None) -> int:
    """Execute CFA instructions from `pc`, appending a row at each location change.

    With rows None (a CIE's initial instructions) nothing is emitted. Returns the last
    location reached.
    """
    data_align = cie.data_align
    code_align = cie.code_align
    signal = cie.signal
    stack: list[_State] = []
    pos = 0
    n = len(code)
    last_rule: Rule | None = None

    def emit(at: int) -> None:
        nonlocal last_rule
        if rows is None:
            return
        rule = state.rule(signal)
        if rule != last_rule:
            rows.append((at, *rule))
            last_rule = rule

    while pos < n:
        op = code[pos]
        pos += 1
        high = op & 0xC0
        if high == 0x40:  # advance_loc
            emit(pc)
            pc += (op & 0x3F) * code_align
            continue
        if high == 0x80:  # offset
            reg = op & 0x3F
            off, pos = read_uleb128(code, pos)
            if reg == _RBP:
                state.rbp_off = off * data_align
            elif reg == cie.ra_reg:
                state.ra_undefined = False
            continue
        if high == 0xC0:  # restore
            reg = op & 0x3F
            if reg == _RBP:
                state.rbp_off = initial.rbp_off
            elif reg == cie.ra_reg:
                state.ra_undefined = initial.ra_undefined
            continue
        if op == 0x00:  # nop
            continue
        if op in (0x02, 0x03, 0x04):  # advance_loc1/2/4
            size = 1 << (op - 2)
            delta = int.from_bytes(code[pos:pos + size], "little")
            pos += size
            emit(pc)
            pc += delta * code_align
        elif op == 0x01:  # set_loc
            emit(pc)
            pc = struct.unpack_from("<Q", code, pos)[0]
            pos += cie.address_size
        elif op == 0x0C:  # def_cfa
            reg, pos = read_uleb128(code, pos)
            off, pos = read_uleb128(code, pos)
            _def_cfa(state, reg, off)
        elif op == 0x12:  # def_cfa_sf
            reg, pos = read_uleb128(code, pos)
            off, pos = read_sleb128(code, pos)
            _def_cfa(state, reg, off * data_align)
        elif op == 0x0D:  # def_cfa_register
            reg, pos = read_uleb128(code, pos)
            _def_cfa(state, reg, state.cfa_off)
        elif op == 0x0E:  # def_cfa_offset
            off, pos = read_uleb128(code, pos)
            _def_cfa(state, state.cfa_reg, off)
        elif op == 0x13:  # def_cfa_offset_sf
            off, pos = read_sleb128(code, pos)
            _def_cfa(state, state.cfa_reg, off * data_align)
        elif op == 0x0F:  # def_cfa_expression
            size, pos = read_uleb128(code, pos)
            expr = code[pos:pos + size]
            pos += size
            plt = _plt_expression(expr)
            state.cfa_reg = -1
            if plt is None:
                state.cfa_kind, state.cfa_off = KIND_NONE, 0
            else:
                state.cfa_kind, state.cfa_off, state.plt_aux = KIND_PLT, plt[0], plt[1]
        elif op in (0x05, 0x11, 0x2F):  # offset_extended(_sf), GNU_negative_offset_extended
            reg, pos = read_uleb128(code, pos)
            if op == 0x11:
                off, pos = read_sleb128(code, pos)
            else:
                off, pos = read_uleb128(code, pos)
                if op == 0x2F:
                    off = -off
            if reg == _RBP:
                state.rbp_off = off * data_align
            elif reg == cie.ra_reg:
                state.ra_undefined = False
        elif op == 0x06:  # restore_extended
            reg, pos = read_uleb128(code, pos)
            if reg == _RBP:
                state.rbp_off = initial.rbp_off
            elif reg == cie.ra_reg:
                state.ra_undefined = initial.ra_undefined
        elif op in (0x07, 0x08):  # undefined, same_value
            reg, pos = read_uleb128(code, pos)
            if reg == _RBP:
                state.rbp_off = 0
            elif reg == cie.ra_reg:
                state.ra_undefined = op == 0x07
        elif op == 0x09:  # register
            reg, pos = read_uleb128(code, pos)
            _, pos = read_uleb128(code, pos)
            if reg == _RBP:
                state.rbp_off = 0
        elif op == 0x0A:  # remember_state
            stack.append(state.copy())
        elif op == 0x0B:  # restore_state
            if stack:
                saved = stack.pop()
                state.cfa_reg, state.cfa_off = saved.cfa_reg, saved.cfa_off
                state.cfa_kind, state.plt_aux = saved.cfa_kind, saved.plt_aux
                state.rbp_off, state.ra_undefined = saved.rbp_off, saved.ra_undefined
        elif op in (0x10, 0x16):  # expression, val_expression
            reg, pos = read_uleb128(code, pos)
            size, pos = read_uleb128(code, pos)
            pos += size
            if reg == _RBP:
                state.rbp_off = 0
        elif op in (0x14, 0x15):  # val_offset(_sf)
            reg, pos = read_uleb128(code, pos)
            if op == 0x14:
                _, pos = read_uleb128(code, pos)
            else:
                _, pos = read_sleb128(code, pos)
        elif op == 0x2E:  # GNU_args_size
            _, pos = read_uleb128(code, pos)
        else:
            raise CfiError(f"unknown CFA instruction {op:#x}")
        if pc > end:
            break
    emit(pc)
    return pc


def _def_cfa(state: _State, reg: int, off: int) -> None:
    state.cfa_reg, state.cfa_off = reg, off
    if reg == _RSP:
        state.cfa_kind = KIND_CFA_RSP
    elif reg == _RBP:
        state.cfa_kind = KIND_CFA_RBP
    else:
        state.cfa_kind = KIND_NONE


def _parse_cie(data: bytes, pos: int, end: int, eh: bool) -> _Cie:
    version = data[pos]
    pos += 1
    aug_end = data.index(b"\0", pos, end)
    aug = data[pos:aug_end].decode("ascii", "replace")
    pos = aug_end + 1
    address_size = 8
    if "eh" in aug:
        pos += 8
    if not eh and version >= 4:
        address_size = data[pos]
        pos += 2  # address_size, segment_selector_size
        if address_size not in (4, 8):
            raise CfiError(f"address size {address_size}")
    code_align, pos = read_uleb128(data, pos)
    data_align, pos = read_sleb128(data, pos)
    if version == 1:
        ra_reg = data[pos]
        pos += 1
    else:
        ra_reg, pos = read_uleb128(data, pos)
    fde_enc = 0x00 if eh else 0x04 if address_size == 8 else 0x03
    lsda_enc = 0xFF
    signal = False
    has_z = aug.startswith("z")
    if has_z:
        length, pos = read_uleb128(data, pos)
        aug_data_end = pos + length
        for ch in aug[1:]:
            if ch == "R":
                fde_enc = data[pos]
                pos += 1
            elif ch == "L":
                lsda_enc = data[pos]
                pos += 1
            elif ch == "P":
                penc = data[pos]
                _, pos = _pointer(data, pos + 1, penc & 0x7F, 0)
            elif ch == "S":
                signal = True
            elif ch in "BG":
                pass
            else:
                break
        pos = aug_data_end
    elif aug not in ("", "eh"):
        raise CfiError(f"augmentation {aug!r}")
    return _Cie(code_align, data_align, ra_reg, fde_enc, lsda_enc, has_z, signal,
                address_size, None, data[pos:end])


def decode(data: bytes, section_addr: int, eh: bool = True) -> list[Row]:
    """Rows of one .eh_frame (eh=True) or .debug_frame section, sorted by address.

    `section_addr` is the section's virtual address (for pc-relative pointers). Each
    FDE's rows are followed by a KIND_NONE row at its end unless another FDE starts
    there; consecutive rows with the same rule are merged. Raises CfiError (and nothing
    else) when the section is malformed. Work is linear in the section's size: every
    entry is read once, and each CIE's instructions once, within its own length.
    """
    try:
        entries = _entries(data, eh)
        cie_entries = {e[0]: e for e in entries if e[1]}
        cies: dict[int, _Cie] = {}
        fdes: list[tuple[int, int, list[Row]]] = []
        for start, is_cie, id_pos, id_size, body, end in entries:
            if is_cie:
                continue
            cie_id = int.from_bytes(data[id_pos:id_pos + id_size], "little")
            # (a CIE may follow its FDEs in .debug_frame, never in .eh_frame)
            cie_at = id_pos - cie_id if eh else cie_id
            cie = cies.get(cie_at)
            if cie is None:
                entry = cie_entries.get(cie_at)
                if entry is None:
                    raise CfiError(f"FDE at {start:#x} names no CIE")
                cie = cies[cie_at] = _parse_cie(data, entry[4], entry[5], eh)
            fde = _decode_fde(data, body, end, cie, section_addr)
            if fde is not None:
                fdes.append(fde)
    except (IndexError, ValueError, struct.error) as exc:  # ValueError: CfiError, bytes.index
        if isinstance(exc, CfiError):
            raise
        raise CfiError(f"malformed call-frame information ({exc})") from None
    return _merge(fdes)


def _entries(data: bytes, eh: bool) -> list[tuple[int, bool, int, int, int, int]]:
    """(start, is CIE, id position, id size, body position, end) of every entry."""
    out = []
    pos = 0
    n = len(data)
    while pos + 4 <= n:
        length = struct.unpack_from("<I", data, pos)[0]
        start = pos
        pos += 4
        if length == 0:
            if eh:
                break
            continue
        id_size = 4
        if length == 0xFFFFFFFF:
            length = struct.unpack_from("<Q", data, pos)[0]
            pos += 8
            id_size = 8
        end = pos + length
        if end > n or length < id_size:
            raise CfiError("entry runs past the section")
        cie_id = int.from_bytes(data[pos:pos + id_size], "little")
        is_cie = cie_id == 0 if eh else cie_id == (1 << (8 * id_size)) - 1
        out.append((start, is_cie, pos, id_size, pos + id_size, end))
        pos = end
    return out


def _decode_fde(data: bytes, pos: int, end: int, cie: _Cie, section_addr: int
                ) -> tuple[int, int, list[Row]] | None:
    pc_begin, pos = _pointer(data, pos, cie.fde_enc, section_addr)
    pc_range, pos = _pointer(data, pos, cie.fde_enc & 0x0F, 0)
    if pc_begin == 0 or pc_range == 0:
        return None  # discarded by the linker
    if cie.has_z:
        length, pos = read_uleb128(data, pos)
        pos += length
    initial = cie.initial
    if initial is None:
        initial = _State(_RSP, 8, KIND_CFA_RSP, 0, 0, False)
        _run(cie, cie.instructions, initial, initial.copy(), 0, 1 << 64, None)
        cie.initial = initial
    rows: list[Row] = []
    pc_end = pc_begin + pc_range
    _run(cie, data[pos:end], initial.copy(), initial, pc_begin, pc_end, rows)
    return pc_begin, pc_end, [r for r in rows if r[0] < pc_end]


def _merge(fdes: list[tuple[int, int, list[Row]]]) -> list[Row]:
    fdes.sort(key=lambda f: f[0])
    out: list[Row] = []
    for i, (begin, end, rows) in enumerate(fdes):
        if out and out[-1][0] >= begin:
            # overlapping FDEs: the later one wins from its start
            while out and out[-1][0] >= begin:
                out.pop()
        for row in rows:
            if out and out[-1][1:] == row[1:]:
                continue
            out.append(row)
        next_begin = fdes[i + 1][0] if i + 1 < len(fdes) else None
        if (next_begin is None or next_begin > end) and (not out or out[-1][1] != KIND_NONE):
            out.append((end, KIND_NONE, 0, 0, 0))
    return out

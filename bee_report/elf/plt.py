"""Names for PLT stubs: `memcmp@plt`, as objdump and perf print them.

A call to a shared-library function goes through a stub in `.plt`, `.plt.sec` (IBT) or
`.plt.got`: an indirect `jmp *GOT_SLOT(%rip)` (`ff 25 disp32`, maybe after `endbr64`
and a `bnd` prefix). The dynamic relocation that fills GOT_SLOT names the function:
`R_X86_64_JUMP_SLOT` in `.rela.plt` (lazy and `-z now` binding alike) or
`R_X86_64_GLOB_DAT` in `.rela.dyn` (`.plt.got`). An `R_X86_64_IRELATIVE` slot has no
symbol and is named `*ABS*+0xADDEND@plt`, as objdump does. Stubs whose jump does not go
through a relocated slot are left unnamed: PLT0 and the lazy-binding stubs of an IBT
`.plt` (`endbr64; push N; jmp PLT0`), which objdump leaves unnamed too.

Only x86-64 is decoded; other machines get no PLT names. The file is untrusted: slot
addresses are only used to look up relocations, and the work is bounded by the sizes of
the sections (each at most MAX_SECTION_BYTES).
"""

from __future__ import annotations

import struct
from array import array

from bee_contract.elf import SHT_DYNSYM, Section, c_string
from bee_report.elf.elffile import ElfFile
from bee_report.elf.symbols import FunctionTable

EM_X86_64 = 62
SHT_RELA = 4
_R_X86_64_GLOB_DAT = 6
_R_X86_64_JUMP_SLOT = 7
_R_X86_64_IRELATIVE = 37
_PLT_SECTIONS = (".plt", ".plt.sec", ".plt.got")
_JMP_RIP = b"\xff\x25"  # jmp *disp32(%rip)
_ENDBR64 = b"\xf3\x0f\x1e\xfa"
_RELA64 = struct.Struct("<QQq")


def plt_functions(elf: ElfFile) -> FunctionTable:
    """A function table of the named PLT stubs of `elf` (empty when there are none).

    Raises ElfError (naming the file) when a section it needs is malformed.
    """
    stubs: dict[int, tuple[int, str]] = {}
    if elf.machine == EM_X86_64 and elf.is_64 and elf.little_endian:
        slots = _slot_names(elf)
        if slots:
            for name in _PLT_SECTIONS:
                sec = elf.section(name)
                if sec is not None and sec.size:
                    stubs.update(_stubs(elf, sec, slots))
    starts: array[int] = array("Q")
    sizes: array[int] = array("Q")
    names: list[str] = []
    for start in sorted(stubs):
        size, name = stubs[start]
        starts.append(start)
        sizes.append(size)
        names.append(name)
    return FunctionTable(starts, sizes, names)


def _slot_names(elf: ElfFile) -> dict[int, str]:
    """GOT slot address -> `name@plt`, from the RELA sections that relocate .dynsym."""
    out: dict[int, str] = {}
    for sec in elf.sections:
        if sec.sh_type != SHT_RELA or not sec.size:
            continue
        if not 0 < sec.link < len(elf.sections):
            continue
        symtab = elf.sections[sec.link]
        if symtab.sh_type != SHT_DYNSYM:
            continue
        relocs = elf.section_data(sec)
        syms = elf.section_data(symtab)
        if not 0 < symtab.link < len(elf.sections):
            continue
        strtab = elf.section_data(elf.sections[symtab.link])
        entsize = symtab.entsize or 24
        for offset, info, addend in _RELA64.iter_unpack(relocs[: len(relocs) // 24 * 24]):
            kind, index = info & 0xFFFFFFFF, info >> 32
            if kind == _R_X86_64_IRELATIVE:
                out.setdefault(offset, f"*ABS*+0x{addend:x}@plt")
            elif kind in (_R_X86_64_JUMP_SLOT, _R_X86_64_GLOB_DAT):
                pos = index * entsize
                if not index or pos + 4 > len(syms):
                    continue
                name = c_string(strtab, struct.unpack_from("<I", syms, pos)[0])
                if name:
                    suffix = f"+0x{addend:x}" if addend else ""
                    out.setdefault(offset, f"{name}{suffix}@plt")
    return out


def _stubs(elf: ElfFile, sec: Section, slots: dict[int, str]) -> dict[int, tuple[int, str]]:
    """Entry address -> (size, name) of the stubs of one PLT section that jump via a slot."""
    data = elf.section_data(sec)
    entry = _entry_size(sec, data)
    out: dict[int, tuple[int, str]] = {}
    for base in range(0, len(data) - entry + 1, entry):
        stub = data[base:base + entry]
        at = stub.find(_JMP_RIP)
        if at < 0 or at + 6 > entry:
            continue
        disp = struct.unpack_from("<i", stub, at + 2)[0]
        slot = (sec.addr + base + at + 6 + disp) & ((1 << 64) - 1)
        name = slots.get(slot)
        if name is not None:
            out[sec.addr + base] = (entry, name)
    return out


def _entry_size(sec: Section, data: bytes) -> int:
    """Bytes per stub: sh_entsize when sensible, else 16 (8 for a `.plt.got` without IBT)."""
    if sec.entsize in (8, 16):
        return sec.entsize
    if sec.name == ".plt.got" and not data.startswith(_ENDBR64):
        return 8
    return 16

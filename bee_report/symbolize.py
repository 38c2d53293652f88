"""Turn recordings into a Profile of symbolized stacks.

User addresses are mapped to ELF virtual addresses through the recorded mapping (start,
file offset) and the binary's program headers, never by assuming a base address. Names
come from `.symtab`/`.dynsym` (demangled); kernel names from the recorded kallsyms
entries; JIT names from recorded perf-map entries. A frame that cannot be named is kept
as `module+0xOFFSET` (or `[unknown]`), never dropped. Return addresses (every frame but
the leaf) are looked up at address - 1 so that a call at the end of a function is
attributed to its caller, as perf and gdb do.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bee_contract.errors import BeeError
from bee_contract.recording import (
    LOST_STACK,
    TRUNCATED_FRAME,
    Binary,
    KernelInfo,
    Process,
    Recording,
    is_anonymous,
)
from bee_report.diag import warn
from bee_report.elf.elffile import ElfFile
from bee_report.find.images import (
    Image,
    SymbolizeOptions,
    debuginfod_client,
    find_debug,
    load_tables,
)
from bee_report.find.locate import Locator
from bee_report.jit import JitIndex
from bee_report.profile import Frame, FrameKind, Profile, StackSample
from bee_report.progress import Progress
from bee_report.python.frames import PythonNamer, merge

if TYPE_CHECKING:  # the loading sequence imports its modules when a binary is found
    from bee_report.find.frame_cache import FrameCache, Resolved

KERNEL_MODULE = "[kernel.kallsyms]"
UNKNOWN = "[unknown]"
TRUNCATED = "[truncated]"
#: Frames kept of one stack (the innermost ones); deeper stacks get a marker frame.
MAX_STACK_FRAMES = 2048
#: Characters kept of one name (frame, process or thread name); longer ones end in "…".
MAX_NAME_CHARS = 2048


class _Binary:
    """A binary of a report: its ELF at once; its symbol and DWARF tables only for the
    first address its saved frames (:mod:`bee_report.find.frame_cache`) do not hold."""

    def __init__(self, elf: ElfFile, load: Callable[[], Image],
                 saved: FrameCache | None) -> None:
        self.elf = elf
        self.saved = saved
        self._load = load
        self._tables: Image | None = None
        #: ELF virtual address -> its frames in this report
        self.frames: dict[int, tuple[Frame, ...]] = {}

    def tables(self) -> Image:
        """The symbol and DWARF tables, loaded on first use."""
        if self._tables is None:
            self._tables = self._load()
            if not self._tables.complete:
                self.saved = None  # a report from it repeats the warning, so it is not saved
        return self._tables

    def resolve(self, vaddr: int) -> Resolved:
        """What `vaddr` resolves to: saved, or from the tables (and then saved)."""
        saved = self.saved
        hit = saved.get(vaddr) if saved is not None else None
        if hit is not None:
            return hit
        from bee_report.demangle.binutils import demangle  # not needed by saved frames

        img = self.tables()
        sym = img.functions.lookup(vaddr)
        chain = img.debug.lookup(vaddr) if img.debug is not None else ()
        hit = (demangle(sym.name) if sym is not None else None,
               tuple((sf.function, sf.inlined, sf.file, sf.line) for sf in reversed(chain)))
        if self.saved is not None:
            self.saved.add(vaddr, hit)
        return hit


class _ProcessMaps:
    """Bisectable executable mappings and JIT symbols of one recorded process."""

    def __init__(self, proc: Process) -> None:
        self.maps = sorted(proc.maps, key=lambda m: m.start)
        self.starts = [m.start for m in self.maps]
        self.jit = JitIndex(proc.jit)
        self.python = PythonNamer(proc.python) if proc.python is not None else None
        #: time bucket -> address * 2 + leaf -> its frames: each distinct frame resolved once
        #: (the bucket matters only for JIT code whose names change over time, else it is 0)
        self.frames: dict[int, dict[int, tuple[Frame, ...]]] = {}
        #: Python stack -> its frames in groups (see PythonNamer.groups)
        self.python_groups: dict[int, list[list[Frame]]] = {}


class _Kernel:
    """Recorded kallsyms entries, bisectable."""

    def __init__(self, info: KernelInfo) -> None:
        self.symbols = info.symbols
        self.starts = [s.address for s in info.symbols]
        self._frames: dict[int, Frame] = {}  # address * 2 + leaf -> its frame

    def frame(self, addr: int, leaf: bool) -> Frame:
        """The frame of a kernel address (a return address unless `leaf`)."""
        key = addr * 2 + leaf
        hit = self._frames.get(key)
        if hit is None:
            hit = self._frames[key] = self._name(addr, leaf)
        return hit

    def _name(self, addr: int, leaf: bool) -> Frame:
        look = addr if leaf else addr - 1
        i = bisect.bisect_right(self.starts, look) - 1
        if i < 0:
            return Frame(UNKNOWN, FrameKind.KERNEL, KERNEL_MODULE, address=addr)
        sym = self.symbols[i]
        module = f"[{sym.module}]" if sym.module else KERNEL_MODULE
        return Frame(sym.name, FrameKind.KERNEL, module, address=addr)


class Symbolizer:
    """Symbolizes recordings; images are located and loaded once per build-id."""

    def __init__(self, opts: SymbolizeOptions | None = None) -> None:
        self.opts = opts or SymbolizeOptions()
        self.locator = Locator(self.opts.symbol_dirs, self.opts.use_original_paths)
        self._images: dict[tuple[str, str | None], _Binary | None] = {}
        self._debuginfod = debuginfod_client(self.opts)
        self._progress: Progress | None = None
        self._cut_stacks = 0
        self._long_names: set[str] = set()

    def close(self) -> None:
        """Release mapped files."""
        for img in self._images.values():
            if img is not None:
                img.elf.close()
        self._images.clear()

    def profile(self, recordings: Sequence[tuple[str, Recording]]) -> Profile:
        """Symbolize every sample of the recordings into one Profile."""
        units = {rec.header.weight_unit for _, rec in recordings}
        if len(units) > 1:
            raise BeeError(f"cannot merge recordings weighted in different units: {sorted(units)}")
        freqs = {rec.header.frequency_hz for _, rec in recordings}
        out = Profile(unit=units.pop() if units else "samples",
                      sources=[name for name, _ in recordings],
                      frequency_hz=freqs.pop() if len(freqs) == 1 else 0,
                      start_time_ns=min((r.header.start_time_ns for _, r in recordings), default=0),
                      duration_ns=sum(r.header.duration_ns for _, r in recordings),
                      end_time_ns=max((r.header.start_time_ns + r.header.duration_ns
                                       for _, r in recordings), default=0),
                      untimed={name: (r.header.start_time_ns, r.header.duration_ns)
                               for name, r in recordings if not r.header.time_resolution_ns})
        total = sum(len({a for i in {s.user_stack for s in rec.samples if s.user_stack >= 0}
                         for a in rec.stacks[i]}) for _, rec in recordings)
        self._progress = Progress(total, "symbolizing")
        try:
            for _, rec in recordings:
                out.samples.extend(self._recording(rec))
                out.lost += rec.total_lost
        finally:
            self._progress.close()
        for img in self._images.values():
            if img is not None and img.saved is not None:
                img.saved.save()
        if self._cut_stacks:
            warn(f"{self._cut_stacks} stacks deeper than {MAX_STACK_FRAMES} frames were cut to "
                 "their innermost frames")
        if self._long_names:
            warn(f"{len(self._long_names)} names longer than {MAX_NAME_CHARS} characters were "
                 "shortened")
        return out

    def _short(self, name: str) -> str:
        """`name`, cut to MAX_NAME_CHARS (counted for one warning)."""
        if len(name) <= MAX_NAME_CHARS:
            return name
        self._long_names.add(name)
        return name[: MAX_NAME_CHARS - 1] + "\u2026"

    def _capped(self, frames: list[Frame]) -> tuple[Frame, ...]:
        """`frames` with over-long names shortened."""
        if max(map(len, [f.name for f in frames]), default=0) <= MAX_NAME_CHARS:
            return tuple(frames)
        return tuple(f if len(f.name) <= MAX_NAME_CHARS
                     else dataclasses.replace(f, name=self._short(f.name)) for f in frames)

    def _innermost(self, addrs: Sequence[int], kind: FrameKind,
                   frames: list[Frame]) -> Sequence[int]:
        """The MAX_STACK_FRAMES innermost of `addrs` (leaf first), with a marker frame for
        the rest appended to `frames`."""
        if len(addrs) <= MAX_STACK_FRAMES:
            return addrs
        self._cut_stacks += 1
        module = KERNEL_MODULE if kind is FrameKind.KERNEL else ""
        frames.append(Frame(f"[truncated: {len(addrs) - MAX_STACK_FRAMES} outer frames]",
                            kind, module))
        return addrs[:MAX_STACK_FRAMES]

    def _recording(self, rec: Recording) -> list[StackSample]:
        kernel = _Kernel(rec.kernel)
        procs = [_ProcessMaps(p) for p in rec.processes]
        # one tuple per distinct stack, shared by its samples (reporters work per tuple)
        stack_cache: dict[tuple[int, int, int, int, int, int], tuple[Frame, ...]] = {}
        event_mode = rec.header.mode == "event"
        samples: list[StackSample] = []
        append = samples.append
        h = rec.header
        events, start, resolution = h.events, h.start_time_ns, h.time_resolution_ns
        span = resolution or h.duration_ns
        # JIT entries may name an address differently from one time bucket to the next
        timed = [p.jit.timed for p in procs]
        pids = [p.pid for p in rec.processes]
        # process and thread names, each shortened once (only those of samples count)
        comms: dict[int, str] = {}
        threads: dict[str, str] = {}
        for s in rec.samples:
            pidx, bucket = s.process, s.bucket
            key = (pidx, s.user_stack, s.kernel_stack, s.python_stack,
                   s.event if event_mode else 0, bucket if timed[pidx] else 0)
            frames = stack_cache.get(key)
            if frames is None:
                found = self._frames(rec, procs, kernel, pidx, s.user_stack, s.kernel_stack,
                                     s.python_stack, key[5])
                if event_mode:  # several probes: one root frame per event
                    found.insert(0, Frame(events[s.event], FrameKind.ROOT))
                frames = stack_cache[key] = self._capped(found)
            comm = comms.get(pidx)
            if comm is None:
                comm = comms[pidx] = self._short(rec.processes[pidx].comm)
            thread = threads.get(s.comm)
            if thread is None:
                thread = threads[s.comm] = self._short(s.comm)
            append(StackSample(frames, s.weight, s.count, pids[pidx], s.tid, s.cpu, comm,
                               thread, events[s.event], start + bucket * resolution, span))
        return samples

    def _frames(self, rec: Recording, procs: list[_ProcessMaps], kernel: _Kernel,
                pidx: int, ustack: int, kstack: int, pystack: int,
                bucket: int) -> list[Frame]:
        frames: list[Frame] = []
        pm = procs[pidx]
        if ustack == LOST_STACK:
            frames.append(Frame("[lost user stack]", FrameKind.USER))
        elif ustack >= 0:
            addrs = self._innermost(rec.stacks[ustack], FrameKind.USER, frames)
            memo = pm.frames.get(bucket)
            if memo is None:
                # the unwinder's mark of a stack stopped short of a root, caller or leaf
                cut = (Frame(TRUNCATED, FrameKind.USER),)
                memo = pm.frames[bucket] = {TRUNCATED_FRAME * 2: cut,
                                            TRUNCATED_FRAME * 2 + 1: cut}
            # callers first (keyed addr * 2), outermost to innermost, then the leaf
            # (addr * 2 + 1): the leaf is looked up at its own address, callers one before
            get = memo.get
            for depth in range(len(addrs) - 1, 0, -1):
                addr = addrs[depth]
                hit = get(addr * 2)
                if hit is None:
                    hit = memo[addr * 2] = self._user(rec, pm, addr, False, bucket)
                frames.extend(hit)
            if addrs:
                addr = addrs[0]
                hit = get(addr * 2 + 1)
                if hit is None:
                    hit = memo[addr * 2 + 1] = self._user(rec, pm, addr, True, bucket)
                frames.extend(hit)
        if pystack >= 0 and pm.python is not None:
            groups = pm.python_groups.get(pystack)
            if groups is None:
                groups = pm.python_groups[pystack] = pm.python.groups(rec.python_stacks[pystack])
            frames = merge(frames, groups)
        elif pystack == LOST_STACK:
            frames.insert(0, Frame("[lost Python stack]", FrameKind.PYTHON))
        if kstack == LOST_STACK:
            frames.append(Frame("[lost kernel stack]", FrameKind.KERNEL, KERNEL_MODULE))
        elif kstack >= 0:
            addrs = self._innermost(rec.stacks[kstack], FrameKind.KERNEL, frames)
            frames.extend(kernel.frame(addrs[d], d == 0) for d in range(len(addrs) - 1, -1, -1))
        return frames

    def _user(self, rec: Recording, pm: _ProcessMaps, addr: int, leaf: bool,
              bucket: int) -> tuple[Frame, ...]:
        look = addr if leaf else addr - 1
        i = bisect.bisect_right(pm.starts, look) - 1
        if i < 0 or look >= pm.maps[i].end or is_anonymous(pm.maps[i].path):
            jit = pm.jit.lookup(look, bucket)
            if jit is not None:
                return (Frame(jit.name, FrameKind.JIT, "[jit]", address=addr),)
            return (Frame(UNKNOWN, FrameKind.USER, address=addr),)
        m = pm.maps[i]
        module = os.path.basename(m.path) or m.path or UNKNOWN
        offset = look - m.start + m.offset
        binary = rec.binaries[m.binary] if m.binary >= 0 else None
        bid = binary.build_id if binary is not None else None
        if binary is not None:
            img = self._image(binary)
        elif m.path == "[vdso]":
            img = self._vdso(rec.kernel.vdso)
        else:
            img = None
        vaddr = img.elf.file_offset_to_vaddr(offset) if img is not None else None
        if img is None or vaddr is None:
            return (Frame(f"{module}+0x{offset:x}", FrameKind.USER, module, address=addr,
                          path=m.path, build_id=bid),)
        hit = img.frames.get(vaddr)
        if hit is None:
            hit = img.frames[vaddr] = self._lookup(img, vaddr, module, offset, addr, m.path,
                                                   bid)
        return hit

    def _lookup(self, img: _Binary, vaddr: int, module: str, offset: int, addr: int,
                path: str, bid: str | None) -> tuple[Frame, ...]:
        """Frames of one ELF address, outermost first (inlined callees after it)."""
        if self._progress is not None:
            self._progress.advance()
        symbol, chain = img.resolve(vaddr)
        fallback = symbol if symbol is not None else f"{module}+0x{offset:x}"
        if not chain:
            return (Frame(fallback, FrameKind.USER, module, address=addr, path=path,
                          build_id=bid),)
        return tuple(
            Frame(function or (fallback if not inlined else "[inlined]"),
                  FrameKind.INLINED if inlined else FrameKind.USER, module, file, line, addr,
                  path, bid)
            for function, inlined, file, line in chain
        )

    def _vdso(self, image: bytes) -> _Binary | None:
        """The recorded vDSO image, opened once per distinct image."""
        key = ("[vdso]", str(hash(image)))
        if key not in self._images:
            img = None
            if image:
                try:
                    elf = ElfFile.from_bytes(image, "[vdso]")
                    tables = Image(elf, elf.functions())
                    img = _Binary(elf, lambda: tables, None)
                except BeeError as exc:
                    warn(str(exc))
            self._images[key] = img
        return self._images[key]

    def _image(self, binary: Binary) -> _Binary | None:
        key = (binary.path, binary.build_id)
        if key in self._images:
            return self._images[key]
        img = None
        path = self.locator.find(binary.path, binary.build_id)
        if path is None and self._debuginfod is not None and binary.build_id is not None:
            path = self._debuginfod.fetch(binary.build_id, "executable")
        if path is not None:
            img = self._load(path, binary)
        elif key in self.locator.mismatched:
            warn(f"{binary.path}: {self.locator.mismatched[key]} has a different build-id "
                 f"than recorded ({binary.build_id}); not used, frames shown as module+offset")
        elif binary.path:
            warn(f"{binary.path}: not found (build-id {binary.build_id or 'none'}); "
                 "frames shown as module+offset; pass --symbols DIR")
        self._images[key] = img
        return img

    def _load(self, path: Path, binary: Binary) -> _Binary | None:
        from bee_report.find.frame_cache import FrameCache

        try:
            elf = ElfFile.open(path)
        except BeeError as exc:
            warn(str(exc))
            return None
        opts = self.opts
        debug_path, files = find_debug(elf, path, binary.path, binary.build_id, opts,
                                       self._debuginfod)
        saved = FrameCache.open(opts.cache_dir, binary.build_id or elf.build_id, files,
                                opts.dwarf)
        return _Binary(elf, lambda: load_tables(elf, path, debug_path, files, binary.path,
                                                binary.build_id, opts), saved)

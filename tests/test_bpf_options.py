"""What `bee record`'s options choose in the one BPF program: the switches written to its
`config` map, each map's size and the programs loaded (pure logic, no BPF needed)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from bee_contract.recording import Unwinder
from bee_record import bpf_load, sampler
from bee_record.probes import parse
from bee_record.sampler import SamplerOptions, map_sizes, program_flags, program_functions

DEFAULT = SamplerOptions()
#: Maps declared in bpf/*.c (BPF_HASH(name, ...), BPF_TABLE("kind", k, v, name, ...), ...).
_DECL = re.compile(r"^BPF_(?:F_)?TABLE\(\"[a-z_]+\",\s*[^,]+,\s*[^,]+,\s*(\w+)|"
                   r"^BPF_[A-Z_]+\((\w+)", re.M)


def declared_maps() -> set[str]:
    return {a or b for a, b in _DECL.findall(sampler.program_text())}


def test_switches_match_the_program() -> None:
    # GIVEN the BEE_F_* switches bpf/profile.c reads
    c = dict(re.findall(r"#define BEE_F_(\w+) (\d+)", sampler.program_text()))
    # THEN Python writes the same bits
    assert {k: int(v) for k, v in c.items()} == {
        "FILTER_PIDS": sampler.F_FILTER_PIDS, "USER": sampler.F_USER,
        "KERNEL": sampler.F_KERNEL, "IDLE": sampler.F_IDLE, "PYTHON": sampler.F_PYTHON,
        "DWARF": sampler.F_DWARF}


def test_every_sized_map_is_declared() -> None:
    # a renamed map would otherwise keep its default size silently
    maps = declared_maps()
    for opts in (DEFAULT, replace(DEFAULT, off_cpu=True, filter_pids=True),
                 replace(DEFAULT, python=False, unwinder=Unwinder.FP)):
        assert set(map_sizes(opts)) <= maps


@pytest.mark.parametrize(("change", "flags"), [
    ({}, sampler.F_USER | sampler.F_KERNEL | sampler.F_PYTHON | sampler.F_DWARF),
    ({"filter_pids": True, "include_idle": True},
     sampler.F_FILTER_PIDS | sampler.F_IDLE | sampler.F_USER | sampler.F_KERNEL
     | sampler.F_PYTHON | sampler.F_DWARF),
    ({"unwinder": Unwinder.FP, "python": False}, sampler.F_USER | sampler.F_KERNEL),
    # no user stacks: nothing to unwind, whatever the unwinder; off-CPU is no switch (it
    # is the sched_switch program, loaded or not)
    ({"user_stacks": False, "off_cpu": True}, sampler.F_KERNEL | sampler.F_PYTHON),
])
def test_options_set_the_switches(change: dict[str, object], flags: int) -> None:
    assert program_flags(replace(DEFAULT, **change)) == flags  # type: ignore[arg-type]


def test_map_sizes_follow_the_options() -> None:
    # GIVEN default options: on-CPU, .eh_frame unwinder, Python frames, whole system
    sizes = map_sizes(replace(DEFAULT, counts_size=1000, stack_storage_size=8192,
                              python_stacks_size=512))
    # THEN the option-sized maps have the options' sizes ...
    assert sizes["counts0"] == sizes["counts1"] == 1000
    assert sizes["stacks0"] == 8192 and sizes["ustacks0"] == 2048  # a quarter, >= 1024
    assert sizes["py_stacks1"] == 512 and sizes["urows"] == DEFAULT.unwind_rows
    # ... the maps of features not in use (off-CPU, pid filter) one entry, and the
    # others (Python processes, unwinder slots) their compiled sizes (not named)
    assert sizes["offstacks"] == sizes["offstart"] == sizes["offustacks"] == 1
    assert sizes["offpystacks"] == sizes["targets"] == 1
    assert "py_procs" not in sizes and "uprocs" not in sizes
    # WHEN frame pointers, no Python, off-CPU, recording pids
    sizes = map_sizes(replace(DEFAULT, unwinder=Unwinder.FP, python=False, off_cpu=True,
                              filter_pids=True))
    # THEN the unwinder's and the walker's maps shrink to one entry, off-CPU's grow
    assert all(sizes[m] == 1 for m in ("urows", "umap_entries", "uprocs", "ustacks0",
                                       "offustacks", "py_stacks0", "py_procs",
                                       "py_threads", "offpystacks"))
    assert sizes["offstacks"] == DEFAULT.stack_storage_size
    assert sizes["offstart"] == DEFAULT.procs_size and "targets" not in sizes


def test_programs_follow_the_options() -> None:
    tp, kp, perf = bpf_load.PROG_TRACEPOINT, bpf_load.PROG_KPROBE, bpf_load.PROG_PERF_EVENT
    always = {"tracepoint__sched__sched_process_exec": tp,
              "tracepoint__sched__sched_process_fork": tp}
    # default: the sampler, its unwinder and Python walker for perf events
    assert program_functions(DEFAULT) == always | {
        "bee_on_cpu": perf, "bee_unwind_perf": perf, "bee_py_link_perf": perf,
        "bee_py_store_perf": perf}
    # off-CPU with frame pointers and no Python: sched_switch alone
    assert program_functions(replace(
        DEFAULT, on_cpu=False, off_cpu=True, unwinder=Unwinder.FP, python=False)) == (
        always | {"tracepoint__sched__sched_switch": tp})
    # probes: one program per program type, whatever their number
    probes = tuple(parse(s) for s in ("tracepoint:sched:sched_process_exec",
                                      "tracepoint:syscalls:sys_enter_write",
                                      "uprobe:/bin/true:main", "uretprobe:/bin/true:main"))
    got = program_functions(replace(DEFAULT, on_cpu=False, python=False, probes=probes))
    assert got == always | {"bee_on_event_tp": tp, "bee_on_event_kp": kp,
                            "bee_unwind_tp": tp, "bee_unwind_kp": kp}


def test_every_program_chosen_is_in_the_source() -> None:
    text = sampler.program_text()
    defined = set(re.findall(r"^int (\w+)\(", text, re.M)) | {
        f"tracepoint__{c}__{n}" for c, n in re.findall(
            r"^TRACEPOINT_PROBE\((\w+), (\w+)\)", text, re.M)}
    probes = (parse("tracepoint:a:b"), parse("uprobe:/bin/true:main"))
    for opts in (replace(DEFAULT, off_cpu=True, probes=probes),
                 replace(DEFAULT, unwinder=Unwinder.FP, python=False)):
        assert set(program_functions(opts)) <= defined

"""The process table of `bee record`, on a fake /proc folder (no BPF needed)."""

from __future__ import annotations

import os
from pathlib import Path

from bee_record.procs import ProcessTable

_MAPS = ("55d0c0a00000-55d0c0a01000 r-xp 00001000 08:01 1234 /usr/bin/true\n"
         "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n")


def _process(proc: Path, pid: int, maps: str, threads: dict[int, str]) -> None:
    base = proc / str(pid)
    base.mkdir(parents=True)
    (base / "comm").write_text("leader\n")
    (base / "status").write_text(f"Name:\tleader\nPPid:\t1\nNSpid:\t{pid}\n")
    (base / "maps").write_text(maps)
    (base / "cmdline").write_text("" if not maps else "prog\0--flag\0")
    for tid, thread_maps in threads.items():
        task = base / "task" / str(tid)
        task.mkdir(parents=True)
        (task / "comm").write_text("worker\n")
        (task / "maps").write_text(thread_maps)
        (task / "cmdline").write_text("prog\0--flag\0")
        os.symlink("/usr/bin/true", task / "exe")


def test_process_whose_main_thread_exited_is_read_through_a_live_thread(
    tmp_path: Path,
) -> None:
    # GIVEN a process whose main thread exited: /proc/PID shows no maps, its thread does
    _process(tmp_path, 40, "", {40: "", 41: _MAPS})
    table = ProcessTable(proc=str(tmp_path))
    # WHEN it is captured
    p = table.processes[table.capture(40, 1)]
    # THEN maps, exe and command line come from the thread; comm and ids from the process
    assert [(m.start, m.path) for m in p.maps] == [(0x55D0C0A00000, "/usr/bin/true")]
    assert (p.exe, p.cmdline, p.comm, p.ppid) == ("/usr/bin/true", ("prog", "--flag"),
                                                  "leader", 1)


def test_rotation_keeps_only_the_newest_generation_of_a_live_pid(tmp_path: Path) -> None:
    # GIVEN a pid seen in two generations (exec or recycled pid) and a process that exited
    _process(tmp_path, 50, _MAPS, {})
    _process(tmp_path, 60, _MAPS, {})
    table = ProcessTable(proc=str(tmp_path))
    table.capture(50, 0)
    table.capture(60, 0)
    table.capture(50, 1)
    (tmp_path / "60" / "maps").unlink()
    os.rename(tmp_path / "60", tmp_path / "gone")
    # WHEN the table is pruned between the files of a series
    remap = table.prune_exited()
    # THEN only the live pid's newest generation is left, re-indexed
    assert [(p.pid, p.generation) for p in table.processes] == [(50, 1)]
    assert remap == {2: 0}
    assert table.index_of(50, 1) == 0

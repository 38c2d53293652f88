"""atheris target: what a recorded process or the kernel's files hand to the recorder.

    .venv/bin/python fuzz/fuzz_target_files.py -atheris_runs=200000

Covers /proc/PID/maps lines, perf maps, mountinfo (kernel pseudo filesystems) and the
terminal escaping of any recorded string. Anything escaping, or a control character left
in terminal text, is a finding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import atheris
from atheris_main import run

with atheris.instrument_imports():
    from bee_contract.safeopen import pseudo_devices
    from bee_contract.text import _UNSAFE, for_terminal
    from bee_record.perfmap import parse_line
    from bee_record.procs import parse_maps

_MOUNTINFO = Path(tempfile.mkdtemp(prefix="bee-fuzz-target-")) / "mountinfo"


def one_input(data: bytes) -> None:
    """Feed one input to every parser of target-controlled text."""
    text = data.decode("utf-8", "replace")
    parse_maps(text)
    for raw in data.split(b"\n"):
        parse_line(raw)
    _MOUNTINFO.write_bytes(data)
    pseudo_devices(str(_MOUNTINFO))
    shown = for_terminal(text)
    if _UNSAFE.search(shown):
        raise AssertionError(f"control character left in {shown!r}")


if __name__ == "__main__":
    run(one_input)

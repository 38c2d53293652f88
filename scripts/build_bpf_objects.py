"""Compile the BPF programs bee ships (bpf/prebuilt/KEY.bpf) with bcc, as root.

Run after changing bpf/*.c or the options that configure it (`make bpf-objects`); the
test `test_shipped_programs_equal_a_compile_of_the_current_source` fails until then.
Files of programs no longer shipped are removed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bee_record import bpf_load
from bee_record.record import shipped_sampler_options
from bee_record.sampler import program_text

FOLDER = Path(__file__).resolve().parent.parent / "bpf" / "prebuilt"


def main() -> int:
    """Compile every shipped option set; write its entry; remove entries no longer shipped."""
    bcc = bpf_load.import_bcc()
    FOLDER.mkdir(exist_ok=True)
    wanted = set()
    for opts in shipped_sampler_options():
        src, cflags = program_text(opts)
        key = bpf_load.shipped_key(src, cflags)
        b = bcc.BPF(text=src, cflags=cflags)
        try:
            data = bpf_load.encode(key, bpf_load.extract(b.module))
        finally:
            b.cleanup()
        path = FOLDER / f"{key}{bpf_load.SUFFIX}"
        path.write_bytes(data)
        wanted.add(path.name)
        print(f"{path.relative_to(FOLDER.parent.parent)}: {len(data)} bytes ({' '.join(cflags)})")
    for old in FOLDER.glob(f"*{bpf_load.SUFFIX}"):
        if old.name not in wanted:
            old.unlink()
            print(f"removed {old.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Compile the BPF program bee ships (bpf/prebuilt/KEY.bpf) with bcc, as root.

Run after changing bpf/*.c (`make bpf-objects`); the test
`test_shipped_program_equals_a_compile_of_the_current_source` fails until then. Files of
programs no longer shipped (older sources) are removed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bee_record import bpf_load
from bee_record.sampler import program_text

FOLDER = Path(__file__).resolve().parent.parent / "bpf" / "prebuilt"


def main() -> int:
    """Compile the program; write its entry; remove any other entry."""
    FOLDER.mkdir(exist_ok=True)
    src = program_text()
    key = bpf_load.shipped_key(src)
    data = bpf_load.encode(key, bpf_load.compile_entry(bpf_load.import_bcc(), src))
    path = FOLDER / f"{key}{bpf_load.SUFFIX}"
    path.write_bytes(data)
    print(f"{path.relative_to(FOLDER.parent.parent)}: {len(data)} bytes")
    for old in FOLDER.glob(f"*{bpf_load.SUFFIX}"):
        if old.name != path.name:
            old.unlink()
            print(f"removed {old.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

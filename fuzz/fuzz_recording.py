"""atheris target: the recording reader and the report pipeline on arbitrary files.

Run for longer than CI does (the suite's hypothesis tests run a bounded number of cases):

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/fuzz_recording.py -atheris_runs=200000 fuzz/corpus

Anything but a BeeError escaping is a finding. Inputs are raw file bytes; half of them get
a valid preamble and checksum prepended so the fuzzer reaches the decoder and validator.
"""

from __future__ import annotations

import struct
import sys
import tempfile
import zlib
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from bee_contract import codec
    from bee_contract.errors import BeeError
    from bee_report.report import ReportOptions, render
    from bee_report.symbolize import Symbolizer

_DIR = Path(tempfile.mkdtemp(prefix="bee-fuzz-"))
_PATH = _DIR / "input.bee"


def one_input(data: bytes) -> None:
    """Feed one input through read, symbolize and every text reporter."""
    if data[:1] == b"\x01":
        body = data[1:]
        data = struct.pack(">8sHBBQI", codec.MAGIC, 1, 0, 0, len(body), zlib.crc32(body)) + body
    _PATH.write_bytes(data)
    try:
        rec = codec.read(_PATH)
        sym = Symbolizer()
        try:
            profile = sym.profile([(str(_PATH), rec)])
            for fmt in ("folded", "top", "speedscope", "pprof"):
                render(profile, ReportOptions(files=(_PATH,), format=fmt))
        finally:
            sym.close()
    except BeeError:
        pass


def main() -> None:
    """Entry point for atheris."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

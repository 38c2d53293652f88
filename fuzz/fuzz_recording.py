"""atheris target: the recording reader and the report pipeline on arbitrary files.

Run for longer than CI does (the suite's hypothesis tests run a bounded number of cases):

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/fuzz_recording.py seed fuzz/corpus   # the samples, v1 and v2
    .venv/bin/python fuzz/fuzz_recording.py -atheris_runs=200000 fuzz/corpus

Anything but a BeeError escaping is a finding. Inputs are raw file bytes; those starting
with byte 1 (2) get a valid version 2 (1) preamble and checksum in its place so the fuzzer
reaches the streaming decoder and validator of each version. The seeds include a version 2
body with every column filled: time buckets, JIT symbols with bucket ranges, CPython code
objects and Python stacks.
"""

from __future__ import annotations

import struct
import sys
import tempfile
import zlib
from pathlib import Path

import atheris
from atheris_main import run

with atheris.instrument_imports():
    from bee_contract import codec
    from bee_contract.errors import BeeError
    from bee_report.report import ReportOptions, render
    from bee_report.symbolize import Symbolizer

_DIR = Path(tempfile.mkdtemp(prefix="bee-fuzz-"))
_PATH = _DIR / "input.bee"


def one_input(data: bytes) -> None:
    """Feed one input through read, symbolize and every text reporter."""
    if data[:1] in (b"\x01", b"\x02"):
        version = codec.FORMAT_VERSION if data[0] == 1 else 1
        body = data[1:]
        data = struct.pack(">8sHBBQI", codec.MAGIC, version, 0, 0, len(body),
                           zlib.crc32(body)) + body
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


def seed(folder: Path) -> None:
    """Write seeds: the sample as a version 2 body, and sample-v1."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository
    from formats.make_sample import SAMPLE_V1, sample_recording

    folder.mkdir(parents=True, exist_ok=True)
    raw = codec.encode(sample_recording(), compress=False)
    (folder / "sample").write_bytes(b"\x01" + raw[codec.PREAMBLE_SIZE:])
    v1 = zlib.decompress(SAMPLE_V1.read_bytes()[codec.PREAMBLE_SIZE:])  # written compressed
    (folder / "sample-v1").write_bytes(b"\x02" + v1)


if __name__ == "__main__":
    run(one_input, seed)

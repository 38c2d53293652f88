"""The neutral contract between the two stages of bee.

The recording model and its codec, the error hierarchy, atomic writes, build-ids and ELF
basics. Imports only the standard library and msgpack; `bee_record` and `bee_report` both
import it and never each other. The format specification lives in `formats/` (installed
as `bee_contract.formats`).
"""

__version__ = "0.1.0"

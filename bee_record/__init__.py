"""bee_record: the target side of bee. Loads BPF, captures raw stacks, writes recordings.

Imports only the standard library, msgpack and (lazily, in `sampler`) bcc.
"""

__version__ = "0.1.0"

"""bee_record: the target side of bee. Loads BPF, captures raw stacks, writes recordings.

Imports only the standard library, msgpack, the contract package `bee_contract` and
(lazily, in `sampler`) bcc.
"""

"""One module per output format; each reads a Profile (symbolized stacks), never msgpack."""

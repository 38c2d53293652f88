"""One module per output format behind the `Reporter` protocol of `registry`; each reads a
Profile (symbolized stacks), never msgpack."""

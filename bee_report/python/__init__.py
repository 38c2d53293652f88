"""Python frames of CPython processes: line tables and merging with native frames."""

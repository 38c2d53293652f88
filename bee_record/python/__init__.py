"""CPython processes on the target: detection, struct layouts, and code-object names.

The BPF walker (`bpf/python.c`) records raw frames (code object address, instruction
index, entry flag); this package finds what it needs in each CPython process (where
`_PyRuntime` is, the version's struct offsets) and reads the code objects' names from the
live process so `bee report` can name Python frames offline.
"""

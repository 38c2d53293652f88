"""bee_report: the workstation side of bee, in subpackages along its pipeline.

Recordings are read through the contract's codec (`bee_contract`); `find` locates each
binary by build-id, `elf`, `dwarf` and `demangle` read it, `symbolize` turns stacks into a
`profile`, and `reporters` render it (one registry of output formats). Never imports
`bee_record`.
"""

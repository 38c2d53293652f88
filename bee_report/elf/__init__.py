"""Reading ELF files on the workstation: sections, symbol tables and their cache.
"""

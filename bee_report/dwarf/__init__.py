"""Reading DWARF: source lines and inlined frames through symbolic's SymCache, cached.
"""

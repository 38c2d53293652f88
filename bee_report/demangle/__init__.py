"""Demangling C++ and Rust symbol names as binutils prints them.
"""

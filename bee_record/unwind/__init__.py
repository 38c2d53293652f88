"""Unwind tables for the BPF unwinder: CFI decoding, compact rows, cache, map loading."""

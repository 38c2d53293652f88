"""One module per `bee` command; each wires typer options to its stage, nothing more."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector paused (then restored) while a batch command runs.

    A report allocates mostly long-lived objects that form no cycles (modules, model
    objects, frames, samples): each collection would only scan them again (~2.5 ms of a
    report of a 2 s recording, and more the larger the recording). Objects are still
    freed by reference counting; only garbage cycles wait for the end of the command.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

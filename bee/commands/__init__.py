"""One module per `bee` command; each wires typer options to its stage, nothing more."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector paused while the block runs, what it made then frozen.

    Loading modules and running a report make mostly long-lived objects that form no
    cycles (modules, classes, the recording model, frames, samples): collections would
    only scan them, during the block and again after it. So none runs during the block,
    and what is still alive at its end moves to the permanent generation (gc.freeze),
    which later collections skip. Everything else is freed by reference counting as
    usual; the few garbage cycles made in the block (55 objects in a report) stay.
    Measured on a warm report of a 2 s recording: 3.3 ms of collections -> 0.2 ms.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()

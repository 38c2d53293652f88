"""The one registry of output formats: `--format` choices, help and dispatch come from it.

A reporter is a module under `bee_report.reporters` whose `REPORTER` satisfies the
:class:`Reporter` protocol. Adding one is that module plus one line in :data:`REPORTERS`.
Modules are imported only when their format is rendered, so the CLI stays quick to start.
"""

from __future__ import annotations

from enum import StrEnum
from importlib import import_module
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bee_report.profile import Profile
    from bee_report.reporters.options import RenderOptions


class Reporter(Protocol):
    """One output format of `bee report`."""

    @property
    def name(self) -> str:
        """The `--format` value."""

    @property
    def binary(self) -> bool:
        """Whether it writes bytes (refused on a terminal) rather than text."""

    @property
    def options(self) -> tuple[str, ...]:
        """The RenderOptions fields it reads (the others do not change its output)."""

    def render(self, profile: Profile, options: RenderOptions) -> str | bytes:
        """The whole output for a profile."""


#: Output format -> module (under bee_report.reporters) holding its REPORTER.
REPORTERS: dict[str, str] = {
    "folded": "folded",
    "top": "top",
    "svg": "flamegraph",
    "speedscope": "speedscope",
    "pprof": "pprof",
    "timeline": "timeline",
}

Format = StrEnum("Format", {name.upper(): name for name in REPORTERS})  # type: ignore[misc]
"""The `--format` choices, in registry order."""


def reporter(name: str) -> Reporter:
    """The reporter of an output format (a name of :data:`REPORTERS`)."""
    module = import_module(f"bee_report.reporters.{REPORTERS[name]}")
    found: Reporter = module.REPORTER
    return found

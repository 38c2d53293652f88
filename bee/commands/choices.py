"""The one way a choice option is declared: an enum, checked by click, refused in one line."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import click


class OneOf(click.Choice[str]):
    """click's Choice, refusing a value in one line that names every choice."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The value if it is one of the choices, else a one-line usage error."""
        if isinstance(value, StrEnum):  # a default: click would match the member's name
            value = value.value
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            option = max(param.opts, key=len) if param is not None and param.opts else "value"
            raise click.UsageError(f"{option} {value}: choose one of {', '.join(self.choices)}",
                                   ctx) from None


def choice(enum: type[StrEnum]) -> OneOf:
    """The click type of an option whose values are the members of `enum`."""
    return OneOf([member.value for member in enum])

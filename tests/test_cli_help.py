"""Help and usage errors of every command: literal option syntax, one line per bad value,
choices taken from the code (the reporter registry and the option enums)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import click
import pytest
import typer

from bee.cli import COMMANDS, app
from bee_report.reporters.options import RenderOptions
from bee_report.reporters.registry import REPORTERS, reporter
from formats.make_sample import SAMPLE


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_prints_option_syntax_literally_and_every_argument_has_help(
        cli: Callable[..., Any], command: str) -> None:
    # GIVEN a command's help
    result = cli(command, "--help")
    assert result.exit_code == 0
    text = result.stdout
    # THEN no markup was interpreted (no emoji, no box drawing) ...
    assert not re.search(r"[\u2500-\u257f\U0001f300-\U0001faff]", text), text
    # ... and each argument is listed with a help text of its own
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    cmd = group.get_command(click.Context(group), command)
    assert cmd is not None
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    assert arguments
    section = text.split("Arguments:", 1)[1].split("Options:", 1)[0]
    for arg in arguments:
        line = next(x for x in section.splitlines() if arg.name.upper() in x)
        assert len(line.split()) > 1 and not line.split()[1].startswith("["), line


def test_record_help_shows_probe_syntax_as_written(cli: Callable[..., Any]) -> None:
    text = " ".join(cli("record", "--help").stdout.split())
    assert "tracepoint:CAT:NAME, uprobe:PATH:SYMBOL" in text


def test_unknown_format_is_one_line_naming_every_registered_format(
        cli: Callable[..., Any]) -> None:
    # WHEN a format that does not exist is asked for
    result = cli("report", SAMPLE, "--format", "nope")
    # THEN one line names every format of the registry, and the exit code says usage
    assert result.exit_code == 2
    assert result.stderr == f"bee: --format nope: choose one of {', '.join(REPORTERS)}\n"
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "option", "choices"), [
    (("report", SAMPLE, "--by", "file"), "--by", "function, module, line"),
    (("report", SAMPLE, "--colors", "pink"), "--colors", "bee, hot, mem, io, java"),
    (("report", SAMPLE, "--renderer", "x"), "--renderer", "auto, builtin, inferno"),
    (("diff", SAMPLE, SAMPLE, "--correction", "x"), "--correction", "bh, holm, none"),
    (("diff", SAMPLE, SAMPLE, "--share", "x"), "--share", "self, total"),
    (("diff", SAMPLE, SAMPLE, "--format", "pprof"), "--format", "top, folded, svg"),
    (("record", "--mode", "x", "--", "true"), "--mode", "cpu, offcpu, wall"),
])
def test_every_choice_option_is_checked_before_work(
        cli: Callable[..., Any], args: tuple[str, ...], option: str, choices: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr == f"bee: {option} {args[-1] if option != '--mode' else 'x'}: " \
                            f"choose one of {choices}\n"


@pytest.mark.parametrize("name", list(REPORTERS))
def test_each_registered_reporter_is_what_its_line_says(name: str) -> None:
    # GIVEN the reporter a registry line points at
    found = reporter(name)
    # THEN it answers to that name and names only options a reporter can be given
    assert found.name == name
    assert isinstance(found.binary, bool)
    fields = {f.name for f in dataclasses.fields(RenderOptions)}
    assert set(found.options) <= fields, set(found.options) - fields

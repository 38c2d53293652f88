"""--from/--to: parsing, the recording's span, the bucket rule, and the CLI's one-line refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bee_contract.errors import ReportError
from bee_report.timewindow import Span, Window, iso, parse_time, window
from formats.make_sample import SAMPLE

START = 1_764_504_000_000_000_000  # 2025-11-30T12:00:00Z
SPAN = Span(START, START + 300_000_000_000)


@pytest.mark.parametrize(("text", "offset_ms"), [
    ("12.5", 12_500), ("0", 0), (".25", 250), ("7s", 7_000),
    ("2025-11-30T12:03:05", 185_000), ("2025-11-30T12:03:05Z", 185_000),
    ("2025-11-30T13:03:05.5+01:00", 185_500), ("2025-11-30 12:00:01", 1_000),
    ("12:04:00", 240_000), ("13:04:00+01:00", 240_000),
])
def test_values_are_seconds_or_dates(text: str, offset_ms: int) -> None:
    assert parse_time(text, SPAN, "--from") == START + offset_ms * 1_000_000


@pytest.mark.parametrize("text", ["-3", "soon", "12:61", "2025-13-01T00:00:00", ""])
def test_bad_values_are_one_line_errors(text: str) -> None:
    with pytest.raises(ReportError, match="--from"):
        parse_time(text, SPAN, "--from")


def test_window_outside_the_recording_names_its_span() -> None:
    with pytest.raises(ReportError) as err:
        window("400", "500", SPAN)
    assert str(err.value) == ("--from 400 --to 500: outside the recording, which spans "
                              "2025-11-30T12:00:00.000Z .. 12:05:00.000Z (0 to 300.000 s)")


def test_open_ended_windows_run_to_the_recording_edges() -> None:
    assert window(None, "10", SPAN) == Window(START, START + 10 * 10**9, "--to 10")
    assert window("10", None, SPAN) == Window(START + 10 * 10**9, SPAN.end_ns, "--from 10")
    assert window(None, None, SPAN) is None
    with pytest.raises(ReportError, match="ends before it starts"):
        window("5", "5", SPAN)


def test_a_bucket_belongs_to_the_window_holding_its_middle() -> None:
    # GIVEN two adjacent windows split at 0.25 s and 100 ms buckets
    first, second = Window(START, START + 250_000_000, ""), Window(
        START + 250_000_000, START + 10**9, "")
    for b in range(10):
        start = START + b * 100_000_000
        # THEN every bucket is in exactly one of them, by its middle
        assert first.holds(start, 100_000_000) != second.holds(start, 100_000_000)
        assert first.holds(start, 100_000_000) == (b < 2)


def test_iso_has_milliseconds() -> None:
    assert iso(START + 1_234_000_000) == "2025-11-30T12:00:01.234Z"


def test_report_refuses_a_window_outside_the_recording(cli: Callable[..., Any]) -> None:
    result = cli("report", SAMPLE, "-f", "folded", "--from", "2", "--to", "3")
    assert result.exit_code != 0
    assert result.stderr.splitlines()[-1] == (
        "bee: --from 2 --to 3: outside the recording, which spans "
        "2025-11-24T16:00:00.000Z .. 16:00:01.000Z (0 to 1.000 s)")


def test_info_refuses_a_bad_time(cli: Callable[..., Any]) -> None:
    result = cli("info", SAMPLE, "--to", "yesterday")
    assert result.exit_code != 0
    assert result.stderr.startswith("bee: --to 'yesterday': not seconds")


def test_diff_of_one_file_needs_windows(cli: Callable[..., Any]) -> None:
    result = cli("diff", SAMPLE)
    assert result.exit_code != 0
    assert "--split" in result.stderr

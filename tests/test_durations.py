"""Durations read the same in doctor, dump, ps and the UI."""

from __future__ import annotations

import math

import pytest

from inspector.durations import age, duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0 ms"),
        (0.0004, "0.4 ms"),
        (0.004, "4 ms"),
        (0.0042, "4 ms"),
        (0.25, "250 ms"),
        (0.9996, "1.0 s"),
        (2.3, "2.3 s"),
        (9.97, "10 s"),
        (12.4, "12 s"),
        (59.7, "1 min"),
        (125, "2 min 5 s"),
        (3599.6, "1 h"),
        (7260, "2 h 1 min"),
        (7300, "2 h 2 min"),
        (2 * 3600 + 40, "2 h 1 min"),
        (86_400 * 3 + 4 * 3600, "3 d 4 h"),
        (-0.0003, "0 ms"),
    ],
)
def test_durations_read_as_a_person_says_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_an_unknown_duration_says_so(value: float | None) -> None:
    assert duration(value) == "?"
    assert duration(value, unknown="—") == "—"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "<1 s"),
        (41.9, "41 s"),
        (312, "5 min"),
        (7825, "2 h"),
        (86_400 * 3 + 5, "3 d"),
        (None, "?"),
    ],
)
def test_ages_in_table_cells_are_their_largest_unit(seconds: float | None, text: str) -> None:
    assert age(seconds) == text
    assert len(age(seconds)) <= 6


def test_an_absurd_duration_from_a_hostile_snapshot_still_reads_in_days() -> None:
    assert duration(1.7e305).endswith(" d")

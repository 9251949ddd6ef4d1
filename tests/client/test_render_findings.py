"""Text rendering of findings: readable plain, coloured only where colour belongs."""

from __future__ import annotations

import io

import pytest

from inspector.diagnose.findings import Finding
from inspector.render.findings import render_finding, render_findings, summary, use_color
from tests.factories import app

FINDING = Finding(
    kind="loop-blocked",
    severity="critical",
    title="Event loop blocked 2.0 s by time.sleep in GET /block",
    detail="The event loop did not run for 2.0 s while running GET /block.",
    hint=(
        "In `async def` code use `await asyncio.sleep(...)`; or declare the endpoint with plain "
        "`def`."
    ),
    location=app(14, "block", "time.sleep(2)"),
    related=(app(5, "endpoint", "return helper()"),),
    count=3,
    worker=4243,
)


def test_plain_rendering_names_the_line_to_fix_and_the_fix() -> None:
    text = render_finding(FINDING, color=False, width=80, cwd="/srv/shop")
    assert "\x1b[" not in text
    lines = text.splitlines()
    assert lines[0].startswith("CRITICAL Event loop blocked 2.0 s")
    assert "[loop-blocked x3 worker=4243]" in lines[0]
    assert lines[1] == "  at app.py:14 in block"
    assert lines[2] == "    time.sleep(2)"
    assert "  see also app.py:5 in endpoint" in lines
    assert any(line.startswith("  fix: ") for line in lines)
    assert all(len(line) <= 80 for line in lines[1:])


def test_code_spans_are_not_split_across_lines() -> None:
    text = render_finding(FINDING, width=50)
    assert "`await asyncio.sleep(...)`" in text


def test_colour_marks_severity() -> None:
    text = render_finding(FINDING, color=True)
    assert "\x1b[1;31mCRITICAL\x1b[0m" in text


def test_summary_counts_by_severity() -> None:
    assert summary([]) == "No problems found."
    warning = Finding(kind="x", severity="warning", title="t", detail="", hint="")
    assert summary([FINDING, warning, warning]) == "3 findings: 1 critical, 2 warnings"


def test_the_whole_report_has_header_notes_and_summary() -> None:
    text = render_findings([FINDING], header="inspector doctor — 127.0.0.1:20101", notes=["a note"])
    assert text.startswith("inspector doctor — 127.0.0.1:20101\n\nCRITICAL")
    assert "note: a note" in text
    assert text.rstrip().endswith("1 finding: 1 critical")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "environ", "expected"),
    [
        (_Tty(), {}, True),
        (io.StringIO(), {}, False),
        (_Tty(), {"NO_COLOR": "1"}, False),
        (_Tty(), {"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value counts
        (_Tty(), {"TERM": "dumb"}, False),
        (io.StringIO(), {"FORCE_COLOR": "1"}, True),
        (io.StringIO(), {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
    ],
)
def test_colour_only_on_a_terminal_without_no_color(
    stream: io.StringIO, environ: dict, expected: bool
) -> None:
    assert use_color(stream, environ) is expected

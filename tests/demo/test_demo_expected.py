"""The table of expected findings stays in step with the demo app's marker comments."""

from __future__ import annotations

import ast

from inspector.demo.expected import (
    EXPECTED,
    HEALTHY_FUNCTIONS,
    demo_app_path,
    expected_for,
    healthy_violations,
    marker_lines,
    match_findings,
)
from inspector.diagnose.findings import KINDS


def test_every_failure_of_the_table_is_marked_on_exactly_one_line_of_the_demo_app() -> None:
    lines = marker_lines()
    for entry in EXPECTED:
        assert len(lines.get(entry.name, ())) == 1, f"`# demo: {entry.name}` marks one line"
    names = {entry.name for entry in EXPECTED}
    for tag, numbers in lines.items():
        assert tag.split("/")[0] in names, f"`# demo: {tag}` names no failure of the table"
        assert len(numbers) == 1, f"`# demo: {tag}` marks {len(numbers)} lines"


def test_every_kind_is_a_diagnosis_kind_and_every_kind_is_demonstrated() -> None:
    """Each kind is the first (taught) kind of at least one failure."""
    for entry in EXPECTED:
        assert set(entry.kinds) <= set(KINDS), entry.name
    assert {entry.kinds[0] for entry in EXPECTED} == set(KINDS)


def test_markers_sit_in_the_handlers_and_jobs_the_table_names() -> None:
    tree = ast.parse(demo_app_path().read_text(encoding="utf-8"))
    functions = {
        node.name: range(node.lineno, (node.end_lineno or node.lineno) + 1)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    lines = marker_lines()
    for tag, numbers in lines.items():
        owners = [name for name, span in functions.items() if numbers[0] in span]
        assert owners, f"marker {tag!r} is outside any function"
        assert not set(owners) & set(HEALTHY_FUNCTIONS), f"marker {tag!r} in a healthy handler"


def test_swallowed_exceptions_are_only_expected_from_python_3_12() -> None:
    names = {entry.name for entry in expected_for((3, 11))}
    assert "swallowed-exception" not in names
    assert "swallowed-exception" in {entry.name for entry in expected_for((3, 12))}


def finding(kind: str, line: int, request: str | None = None, function: str = "f") -> dict:
    return {
        "kind": kind,
        "location": {"file": "/srv/shop/demo_app.py", "line": line, "function": function},
        "related": [],
        "request": request,
    }


def test_a_finding_matches_at_a_marked_line_of_an_accepted_kind_only() -> None:
    lines = marker_lines()
    entry = next(e for e in EXPECTED if e.name == "background-task-failed")
    raise_line = lines["background-task-failed"][0]
    enqueue_line = lines["background-task-failed/queued"][0]
    assert match_findings([finding("background-failed", raise_line)], [entry])[0].finding
    assert match_findings([finding("background-failed", enqueue_line)], [entry])[0].finding
    assert not match_findings([finding("background-failed", raise_line + 1)], [entry])[0].finding
    assert not match_findings([finding("loop-blocked", raise_line)], [entry])[0].finding
    related = finding("background-failed", 1)
    related["related"] = [{"file": "demo_app.py", "line": raise_line, "function": "x"}]
    assert match_findings([related], [entry])[0].finding is related


def test_findings_on_healthy_endpoints_are_violations() -> None:
    assert healthy_violations([finding("hanging-request", 1, "GET /items/3")])
    assert healthy_violations([finding("hanging-request", 1, "GET /items/{item_id}")])
    assert healthy_violations([finding("loop-blocked", 1, None, function="health")])
    assert not healthy_violations([finding("hanging-request", 1, "GET /pricing/sku-1")])
    assert not healthy_violations([finding("hanging-request", 1, "POST /items/3")])

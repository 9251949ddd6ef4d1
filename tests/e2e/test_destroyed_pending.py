"""A task the garbage collector takes while it still waits is found, with its coroutine."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from tests.e2e.test_doctor_e2e import doctor_until, marked_line
from tests.helpers.server import inspector_run


def test_a_forgotten_task_collected_while_pending_is_named_with_its_coroutine(
    tmp_path: Path,
) -> None:
    with inspector_run("tests.apps.doctor_destroyed:app", tmp_path) as server:
        for order in (1, 2, 3):
            request = urllib.request.Request(server.url(f"/orders/{order}/track"), method="POST")
            urllib.request.urlopen(request, timeout=10).read()
        _, document = doctor_until(server, lambda f: f["kind"] == "task-destroyed-pending")
    [finding] = [f for f in document["findings"] if f["kind"] == "task-destroyed-pending"]
    assert finding["severity"] == "warning"
    assert finding["location"]["line"] == marked_line("doctor_destroyed.py", "marker: dies")
    assert finding["count"] == 3
    assert "notify_when_shipped" in finding["title"]
    assert "POST /orders/" in finding["detail"]

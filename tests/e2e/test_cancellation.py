"""A task that swallowed its cancellation is found at its line; timeouts' cancellations are not."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_doctor_e2e import doctor_until, marked_line
from tests.helpers.server import inspector_run

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() needs Python 3.11"),
]


def post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).read()


def test_a_task_that_kept_running_after_cancel_is_named_and_timeouts_are_not(
    tmp_path: Path,
) -> None:
    with inspector_run("tests.apps.doctor_cancel:app", tmp_path) as server:
        post(server.url("/start"))
        post(server.url("/stop"))
        _, document = doctor_until(
            server, lambda f: f["kind"] == "cancellation-swallowed", timeout=20
        )
    [finding] = [f for f in document["findings"] if f["kind"] == "cancellation-swallowed"]
    assert finding["severity"] == "warning"
    assert finding["location"]["line"] == marked_line("doctor_cancel.py", "marker: swallowed")
    assert "stubborn" in finding["title"]
    assert not [f for f in document["findings"] if "polite" in f["title"] + f["detail"]]

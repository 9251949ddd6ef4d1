"""A lock held across a slow await with requests queueing for it is found, at the await."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

from tests.e2e.test_doctor_e2e import doctor_until, marked_line
from tests.helpers.server import inspector_run


def call(url: str) -> None:
    """One request; the server may stop before it is answered."""
    try:
        urllib.request.urlopen(url, timeout=60).read()
    except OSError:
        pass


def test_requests_queueing_for_a_lock_held_across_an_await_is_lock_contention(
    tmp_path: Path,
) -> None:
    with inspector_run("tests.apps.doctor_contention:app", tmp_path) as server:
        url = server.url("/convert")
        callers = [threading.Thread(target=call, args=(url,), daemon=True) for _ in range(5)]
        for caller in callers:
            caller.start()
        _, document = doctor_until(server, lambda f: f["kind"] == "lock-contention")
    finding = next(f for f in document["findings"] if f["kind"] == "lock-contention")
    assert finding["severity"] == "warning"
    # The line to change is the await inside `async with lock:`; the slow call it leads to
    # (in a helper) is named beside it.
    assert finding["location"]["line"] == marked_line("doctor_contention.py", "marker: held")
    related = [frame["line"] for frame in finding["related"]]
    assert marked_line("doctor_contention.py", "marker: slow") in related
    assert len(related) == len(set(related))
    assert "GET /convert" in finding["detail"]
    assert finding["count"] >= 3
    kinds = {f["kind"] for f in document["findings"]}
    assert "deadlock" not in kinds and "stuck-task" not in kinds

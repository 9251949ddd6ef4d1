"""A loop that waits for itself is named for what it is, against a real `inspector run` server."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_doctor_e2e import doctor_until, marked_line
from tests.helpers.server import inspector_run


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_run_coroutine_threadsafe_result_on_the_loop_is_a_sync_async_deadlock(
    tmp_path: Path, loop: str
) -> None:
    with inspector_run("tests.apps.doctor_sync_async:app", tmp_path, loop=loop) as server:
        url = server.url("/self-wait?seconds=4")
        caller = threading.Thread(
            target=lambda: urllib.request.urlopen(url, timeout=30).read(), daemon=True
        )
        caller.start()
        status, document = doctor_until(server, lambda f: f["kind"] == "sync-async-deadlock")
        caller.join(30)
    finding = next(f for f in document["findings"] if f["kind"] == "sync-async-deadlock")
    assert status == 1
    assert finding["severity"] == "critical"
    assert finding["location"]["file"].endswith("doctor_sync_async.py")
    assert finding["location"]["line"] == marked_line("doctor_sync_async.py", "marker: self")
    assert "GET /self-wait" in finding["title"]
    same_line = [
        f
        for f in document["findings"]
        if f["kind"] == "loop-blocked" and f["location"] == finding["location"]
    ]
    assert same_line == [], "one problem, said once"

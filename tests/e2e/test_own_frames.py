"""The inspector never shows itself: no stack, await chain or traceback of a real server's
snapshot carries a frame of the inspector's own code (its middleware, probes, threadpool
wrapper or the `inspector run` command line), and a request running a sync endpoint in a worker
thread is shown at the user's function and line, not at the wrapper."""

from __future__ import annotations

import gc
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inspector.frame_kinds import classify
from tests.e2e.test_adversity import dump_json
from tests.e2e.test_doctor_e2e import marked_line
from tests.helpers.server import RunningServer, inspector_run

pytestmark = pytest.mark.e2e

APP = "own_frames_app.py"


def call_in_background(server: RunningServer, path: str) -> threading.Thread:
    url = server.url(path)
    caller = threading.Thread(
        target=lambda: urllib.request.urlopen(url, timeout=40).read(), daemon=True
    )
    caller.start()
    return caller


def all_frames(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every frame of a snapshot document, with where it was found."""
    for task in document.get("tasks", ()):
        for frame in task.get("stack", ()):
            yield f"task {task['name']}", frame
    for frame in document.get("loop_thread_stack", ()):
        yield "loop thread", frame
    for thread in document.get("threads", ()):
        for frame in thread.get("stack", ()):
            yield f"thread {thread['name']}", frame
    for stall in document.get("stalls", ()):
        for sample in stall.get("samples", ()):
            for frame in sample["frames"]:
                yield f"stall {stall['id']}", frame
    for event in document.get("exceptions", ()):
        for frame in (event.get("error") or {}).get("traceback", ()):
            yield "exception", frame


def wait_for(server: RunningServer, found: Any, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        document = dump_json(server)["snapshot"]
        if found(document):
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s")
        time.sleep(0.3)


def innermost_app_frame(stack: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((f for f in reversed(stack) if classify(f["file"]) == "app"), None)


def task_serving(document: dict[str, Any], path: str) -> dict[str, Any] | None:
    request = next((r for r in document["requests"] if r["path"] == path), None)
    if request is None or request.get("task_id") is None:
        return None
    return next((t for t in document["tasks"] if t["id"] == request["task_id"]), None)


def test_snapshots_carry_no_inspector_frame_and_a_worker_task_ends_at_the_users_line(
    tmp_path: Path,
) -> None:
    with inspector_run(f"tests.apps.{APP[:-3]}:app", tmp_path) as server:
        callers = [call_in_background(server, p) for p in ("/hang", "/sync-wait")]
        server.get("/fail")
        gc.collect()

        def ready(document: dict[str, Any]) -> bool:
            worker = task_serving(document, "/sync-wait")
            return (
                task_serving(document, "/hang") is not None
                and worker is not None
                and innermost_app_frame(worker["stack"]) is not None
                and bool(document.get("exceptions"))
            )

        document = wait_for(server, ready)
        server.get("/release")
        for caller in callers:
            caller.join(30)

    own = [
        (where, f["file"])
        for where, f in all_frames(document)
        if classify(f["file"]) == "inspector"
    ]
    assert own == []

    hanging = task_serving(document, "/hang")
    assert hanging is not None
    assert innermost_app_frame(hanging["stack"])["line"] == marked_line(APP, "HANG-LINE")

    worker = task_serving(document, "/sync-wait")
    assert worker is not None
    user_line = innermost_app_frame(worker["stack"])
    assert user_line is not None
    assert (user_line["function"], user_line["line"]) == (
        "sync_wait",
        marked_line(APP, "SYNC-LINE"),
    )
    wait = worker["waiting_on"]["description"]
    assert "sync_wait" in wait and "_run_in_worker" not in wait

    raised = [e["error"]["traceback"] for e in document["exceptions"] if e["error"]["traceback"]]
    assert raised and raised[0][-1]["line"] == marked_line(APP, "RAISE-LINE")


def test_the_servers_logged_traceback_names_the_app_not_the_inspector(tmp_path: Path) -> None:
    with inspector_run(f"tests.apps.{APP[:-3]}:app", tmp_path) as server:
        with pytest.raises(urllib.error.HTTPError) as failed:
            server.get("/crash")
        assert failed.value.code == 500
        deadline = time.monotonic() + 10
        while "inventory out of sync" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        output = server.output()
    logged = output[output.index("Exception in ASGI application") :]
    assert f'{APP}", line {marked_line(APP, "CRASH-LINE")}, in crash' in logged
    assert "ValueError: inventory out of sync" in logged
    assert "/inspector/" not in logged.split("ValueError: inventory out of sync")[0]

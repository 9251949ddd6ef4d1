"""The live UI attached to a real `inspector run` server through the real agent source."""

from __future__ import annotations

import threading
import urllib.error
from pathlib import Path

import pytest

from inspector.client.target import open_source
from inspector.tui.app import make_app
from inspector.tui.views.task_detail import TaskDetailView
from inspector.tui.vitals import local_vitals
from inspector.tui.widgets.banners import StallBanner
from inspector.tui.widgets.live_table import LiveTable
from tests.helpers.server import inspector_run
from tests.tui.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def get_quietly(server, path: str) -> None:
    try:
        server.get(path, timeout=20)
    except (OSError, urllib.error.URLError):
        pass


async def test_attach_sees_a_blocked_loop_and_a_stuck_task(tmp_path: Path) -> None:
    with inspector_run("tests.apps.tui_app:app", tmp_path) as server:
        server.get("/park")
        host, port = server.agent_address()
        app = make_app(
            open_source(f"{host}:{port}", None), interval=0.25, stuck_after=1.0, vitals=local_vitals
        )
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: app.observation is not None, timeout=30)
            assert app.observation.snapshot.process.pid == server.registrations()[0].pid

            # The parked task: listed, waiting on an Event, with the line it waits at.
            await pilot.press("2")
            tasks = app.query_one("#task-table", LiveTable)
            await pilot.press("slash", *"waits-for-report")
            await wait_for(pilot, lambda: tasks.row_count == 1, timeout=20)
            row = tasks.get_row(tasks.keys[0])
            assert "Event" in row[4] and "tui_app.py" in row[5]
            await pilot.press("escape", "enter")
            await wait_for(pilot, lambda: app.views.active == "task")
            detail = app.query_one(TaskDetailView)
            await wait_for(pilot, lambda: detail.current_location() is not None)
            assert (
                detail.current_location().code
                == "await report_ready.wait()  # nothing ever sets it"
            )

            # The blocked loop: the banner names the line and the request while it lasts.
            blocker = threading.Thread(
                target=get_quietly, args=(server, "/export?seconds=3"), daemon=True
            )
            blocker.start()
            banner = app.query_one(StallBanner)
            await wait_for(
                pilot, lambda: banner.display and "time.sleep" in str(banner.render()), timeout=15
            )
            text = str(banner.render())
            assert "tui_app.py:22" in text and "serving GET /export" in text, text
            blocker.join(timeout=20)
            await wait_for(pilot, lambda: not banner.display, timeout=15)

            # Vitals come from psutil on this machine.
            await wait_for(
                pilot,
                lambda: (
                    "RSS" in str(app.query_one("#rss-label").render())
                    and "—" not in str(app.query_one("#rss-label").render())
                ),
                timeout=10,
            )

"""The live UI on the parent of `inspector run --workers 2`: the Workers view and the switcher."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.registration import ENV_RUNTIME_DIR
from inspector.tui.app import make_app
from inspector.tui.widgets.live_table import LiveTable
from inspector.tui.workers import find_worker_group
from tests.helpers.server import inspector_run
from tests.tui.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


async def test_attach_to_a_parent_lists_both_workers_and_switches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with inspector_run("tests.apps.core_app:app", tmp_path, workers=2, inspect_port=0) as server:
        monkeypatch.setenv(ENV_RUNTIME_DIR, str(server.runtime_dir))
        worker_pids = sorted(r.pid for r in server.registrations())
        assert len(worker_pids) == 2 and server.process.pid not in worker_pids

        # `attach --pid PARENT` resolves to the workers (it only stops short of opening a
        # screen here, having no terminal) instead of asking to pick one.
        status = await asyncio.to_thread(main, ["attach", "--pid", str(server.process.pid)])
        assert status == 2 and "needs a terminal" in capsys.readouterr().err

        group = find_worker_group(server.process.pid)
        assert group is not None
        assert sorted(w.pid for w in group.initial) == worker_pids
        first = group.initial[0]
        app = make_app(group.source_factory(first.address), interval=0.5, group=group)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: app.observation is not None, timeout=30)
            assert app.observation.snapshot.process.pid == first.pid

            await pilot.press("9")
            table = app.query_one("#workers-table", LiveTable)
            await wait_for(pilot, lambda: sorted(table.keys) == [str(p) for p in worker_pids])
            # Each row comes from that worker's own agent: both answer, with their tasks counted.
            await wait_for(
                pilot,
                lambda: all(("answering", "success") in table.get_row(k) for k in table.keys),
            )

            other = next(pid for pid in worker_pids if pid != first.pid)
            await pilot.press("w")
            await wait_for(
                pilot,
                lambda: (
                    app.observation is not None and app.observation.snapshot.process.pid == other
                ),
                timeout=20,
            )
            line = str(app.query_one("#target-line").render())
            assert f"(pid {other})" in line and "worker 2/2" in line

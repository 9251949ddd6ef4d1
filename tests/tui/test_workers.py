"""The worker switcher, the Workers view and following restarts, on fake workers."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from inspector.model import Snapshot
from inspector.tui.app import InspectorApp
from inspector.tui.widgets.live_table import LiveTable
from inspector.tui.workers import WorkerGroup, to_workers
from tests.tui.conftest import build_app, wait_for
from tests.tui.fakes import FakeSource


class FakeFleet:
    """Workers that come and go: what `discover` returns and a FakeSource per connection."""

    def __init__(self, snapshot: Snapshot, pids: list[int]) -> None:
        self.base = snapshot
        self.alive: dict[int, str] = {pid: f"127.0.0.1:{20100 + i}" for i, pid in enumerate(pids)}
        self.sources: list[FakeSource] = []

    def snapshot_of(self, address: str) -> Snapshot:
        pid = next(pid for pid, a in self.alive.items() if a == address)
        return dataclasses.replace(
            self.base, process=dataclasses.replace(self.base.process, pid=pid)
        )

    def discover(self) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(pid=pid, agent_address=address, worker=None, uptime=None)
            for pid, address in sorted(self.alive.items())
        ]

    def source(self, address: str) -> FakeSource:
        source = FakeSource([self.snapshot_of(address)], address=address)
        self.sources.append(source)
        return source

    def kill(self, pid: int) -> None:
        address = self.alive.pop(pid)
        for source in self.sources:
            if source.address == address:
                source.down = True

    def start(self, pid: int, address: str) -> None:
        self.alive[pid] = address

    def app(self) -> InspectorApp:
        group = WorkerGroup(
            parent_pid=1,
            discover=self.discover,
            initial=tuple(to_workers(self.discover())),
            source_factory=self.source,
            interval=0.2,
        )
        first = self.source(group.initial[0].address)
        return build_app([], source=first, group=group)


def header(app: InspectorApp) -> str:
    return str(app.query_one("#target-line").render())


def shown_pid(app: InspectorApp) -> int | None:
    return app.observation.snapshot.process.pid if app.observation else None


def workers_table(app: InspectorApp) -> LiveTable:
    return app.query_one("#workers-table", LiveTable)


async def test_w_switches_the_views_and_the_header_to_the_next_worker(healthy) -> None:
    fleet = FakeFleet(healthy, [501, 502])
    app = fleet.app()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: shown_pid(app) == 501)
        assert "worker 1/2 (pid 501)" in header(app)
        await pilot.press("w")
        await wait_for(pilot, lambda: shown_pid(app) == 502)
        assert "worker 2/2 (pid 502)" in header(app)
        await pilot.press("w")
        await wait_for(pilot, lambda: shown_pid(app) == 501)


async def test_workers_view_lists_every_worker_and_enter_switches(healthy) -> None:
    fleet = FakeFleet(healthy, [501, 502, 503])
    app = fleet.app()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: shown_pid(app) == 501)
        await pilot.press("9")
        table = workers_table(app)
        await wait_for(pilot, lambda: table.keys == ["501", "502", "503"])
        assert "9 Workers 3" in str(app.views.get_tab("workers").label)
        row = table.get_row("503")
        assert row is not None and "127.0.0.1:20102" in row
        assert f"{len(healthy.tasks):,}" in row  # the tasks count of its cheap snapshot
        table.move_to_key("503")
        await pilot.press("enter")
        await wait_for(pilot, lambda: shown_pid(app) == 503)
        assert app.views.active == "findings"
        assert "worker 3/3 (pid 503)" in header(app)


async def test_a_vanished_worker_is_dropped_and_the_ui_moves_to_a_live_one(healthy) -> None:
    fleet = FakeFleet(healthy, [501, 502])
    app = fleet.app()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: shown_pid(app) == 501)
        await pilot.press("w")
        await wait_for(pilot, lambda: shown_pid(app) == 502)
        fleet.kill(502)
        fleet.start(504, "127.0.0.1:20104")  # the parent started a replacement
        await wait_for(pilot, lambda: shown_pid(app) in (501, 504))
        assert any("502 is gone" in n.message for n in app._notifications)
        await wait_for(pilot, lambda: workers_table(app).keys == ["501", "504"])
        assert "pid 502" not in header(app)


async def test_without_a_worker_group_there_is_no_workers_tab(healthy) -> None:
    app = build_app([healthy])
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("9", "w")
        assert not app.query("#workers-table")
        assert app.views.active == "findings"

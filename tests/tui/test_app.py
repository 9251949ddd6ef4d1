"""The live UI driven through Pilot against recorded snapshots and a scriptable source."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from inspector import protocol
from inspector.model import Snapshot, TaskInfo
from inspector.protocol import Result
from inspector.tui import palette
from inspector.tui.app import InspectorApp
from inspector.tui.screens.confirm import ConfirmScreen
from inspector.tui.screens.help import HelpScreen
from inspector.tui.views.findings import FindingItem, FindingsView
from inspector.tui.views.task_detail import TaskDetailView
from inspector.tui.widgets.banners import ConnectionBanner, StallBanner
from inspector.tui.widgets.live_table import LiveTable
from tests.tui.conftest import build_app, until_applied, wait_for
from tests.tui.fakes import FakeSource, load

SIZE = (120, 36)


def table(app: InspectorApp, selector: str) -> LiveTable:
    return app.query_one(selector, LiveTable)


def text_of(app: InspectorApp, selector: str) -> str:
    return str(app.query_one(selector).render())


async def show_tasks(pilot, app: InspectorApp, rows: int | None = None) -> LiveTable:
    """Switch to the tasks view (key 2) and wait until its table has `rows` rows (or any)."""
    await pilot.press("2")
    tasks = table(app, "#task-table")
    if rows is None:
        await wait_for(pilot, lambda: tasks.row_count > 0)
    else:
        await wait_for(pilot, lambda: tasks.row_count == rows)
    return tasks


# --- header, banner, findings ----------------------------------------------------------------


async def test_banner_says_where_and_for_which_request_the_loop_is_blocked(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        banner = app.query_one(StallBanner)
        assert banner.display
        assert "Loop blocked 2.3 s at app.py:57 in time.sleep, serving GET /export" in str(
            banner.render()
        )
        header = text_of(app, "#target-line")
        assert "pid 48213" in header and "live" in header


async def test_no_banner_while_the_loop_runs(healthy) -> None:
    app = build_app([healthy])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        assert not app.query_one(StallBanner).display
        assert "Nothing wrong found" in text_of(app, "#findings-empty")


async def test_findings_open_on_the_worst_expanded_and_jump_to_the_task(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await wait_for(pilot, lambda: len(app.query_one(FindingsView).items) == 6)
        items = app.query_one(FindingsView).items
        assert app.views.active == "findings"
        assert items[0].expanded and not items[1].expanded
        items[1].focus()
        await pilot.press("enter")
        assert items[1].expanded
        assert "Take the two locks in the same order" in str(
            items[1].query_one(".finding-evidence").render()
        )
        await pilot.press("t")
        await wait_for(pilot, lambda: app.views.active == "task")
        assert app.query_one(TaskDetailView).task_id == 1057


async def test_expansion_and_focus_survive_an_update(blocked) -> None:
    source = FakeSource([blocked])
    app = build_app([], source=source)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await wait_for(pilot, lambda: len(app.query_one(FindingsView).items) == 6)
        third = app.query_one(FindingsView).items[2]
        third.focus()
        await pilot.press("enter")
        served = source.served
        source.push(dataclasses.replace(blocked, taken_at=blocked.taken_at + 1))
        await wait_for(
            pilot,
            lambda: source.served > served and app.observation.snapshot.taken_at > blocked.taken_at,
        )
        items = app.query_one(FindingsView).items
        assert items[2] is third and third.expanded and third.has_focus


# --- tasks ------------------------------------------------------------------------------------


async def test_tasks_filter_as_you_type(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        tasks = await show_tasks(pilot, app, len(blocked.tasks))
        await pilot.press("slash", *"lock held")
        await wait_for(pilot, lambda: tasks.row_count == 2)
        assert sorted(tasks.keys) == ["1057", "1058"]
        assert "2 of 58 tasks" in text_of(app, "#task-summary")
        await pilot.press("escape")
        await wait_for(pilot, lambda: tasks.row_count == len(blocked.tasks))


async def test_tasks_sort_by_age_state_and_name(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        tasks = await show_tasks(pilot, app)
        ages = [blocked.task(int(key)).age for key in tasks.keys]
        assert ages == sorted(ages, reverse=True)
        await pilot.press("o")  # state
        assert tasks.keys[0] == "1042"  # the running one
        assert blocked.task(int(tasks.keys[1])).state == "failed"
        await pilot.press("o")  # name
        names = [blocked.task(int(key)).name.lower() for key in tasks.keys]
        assert names == sorted(names)
        await pilot.press("O")
        assert [blocked.task(int(key)).name.lower() for key in tasks.keys] == sorted(
            names, reverse=True
        )


async def test_group_by_coroutine_then_open_a_group(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        tasks = await show_tasks(pilot, app)
        await pilot.press("g")
        coros = {task.coro for task in blocked.tasks}
        assert tasks.row_count == len(coros)
        assert tasks.get_row("coro:RequestResponseCycle.run_asgi")[0] == "54"
        tasks.move_to_key("coro:refresh_prices_forever")
        await pilot.press("enter")
        await wait_for(pilot, lambda: tasks.keys == ["3"])


async def test_rows_update_in_place_and_the_cursor_stays_on_its_task(blocked) -> None:
    source = FakeSource([blocked])
    app = build_app([], source=source)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        tasks = await show_tasks(pilot, app, len(blocked.tasks))
        tasks.move_to_key("2030")
        screen_row = tasks.cursor_row - round(tasks.scroll_y)
        # Three older tasks vanish (rows above the cursor), one new task appears, one changes.
        gone = {1, 2, 3}
        changed = dataclasses.replace(blocked.task(2030), state="cancelled")
        new_task = TaskInfo(id=99999, name="Task-new", state="pending", coro="new_job", age=0.1)
        kept = [changed if t.id == 2030 else t for t in blocked.tasks if t.id not in gone]
        source.push(
            dataclasses.replace(blocked, taken_at=blocked.taken_at + 1, tasks=(*kept, new_task))
        )
        await wait_for(pilot, lambda: tasks.row_count == len(blocked.tasks) - 2)
        assert tasks.cursor_key == "2030"
        assert tasks.cursor_row - round(tasks.scroll_y) == screen_row
        assert tasks.get_row("2030")[2] == ("cancelled", "muted")


async def test_ten_thousand_tasks_stay_responsive(many_tasks) -> None:
    app = build_app([many_tasks], interval=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        tasks = await show_tasks(pilot, app, 10_000)
        await pilot.press("end")
        assert tasks.cursor_row == 9_999
        await pilot.press("slash", *"heartbeat")
        expected = sum(1 for task in many_tasks.tasks if task.coro == "heartbeat")
        await wait_for(pilot, lambda: tasks.row_count == expected)
        assert max(app.apply_seconds) < 1.0  # generous: benchmarks/bench_tui.py measures it


# --- task detail and cancel -------------------------------------------------------------------


async def open_task(pilot, app: InspectorApp, task_id: int) -> TaskDetailView:
    app.action_open_task(task_id)
    detail = app.query_one(TaskDetailView)
    await wait_for(pilot, lambda: detail.frames.row_count > 0)
    return detail


async def test_task_detail_shows_the_chain_and_what_the_task_waits_for(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        detail = await open_task(pilot, app, 1057)
        facts = text_of(app, "#task-facts")
        assert "Lock payment_lock" in facts and "held by Task-1058" in facts
        assert "POST /orders/981/charge" in facts
        assert detail.frames.keys == ["fold:0", "5", "6"]  # five library frames in one line
        assert detail.current_location().location == "/srv/shop/orders.py:41"  # the app frame
        await pilot.press("c")
        assert app.clipboard == "/srv/shop/orders.py:41"


async def test_cancel_asks_first_and_reports_the_result(blocked) -> None:
    source = FakeSource([blocked], cancel_result=Result(ok=True, message="Task-1061 cancelled"))
    app = build_app([], source=source)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await open_task(pilot, app, 1061)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert source.cancelled == []
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.last_result is not None)
        assert source.cancelled == [1061]
        assert app.last_result.ok


async def test_cancel_is_refused_when_the_agent_is_read_only(blocked) -> None:
    source = FakeSource([blocked], read_only=True)
    app = build_app([], source=source)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await wait_for(pilot, lambda: app.hello is not None)
        await open_task(pilot, app, 1061)
        assert "read-only" in text_of(app, "#task-actions")
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert source.cancelled == []


async def test_a_saved_snapshot_cannot_cancel_or_pause(blocked) -> None:
    source = FakeSource([blocked], live=False, address="snap.json")
    app = build_app([], source=source)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        assert "saved snapshot" in text_of(app, "#target-line")
        assert app.cancel_refusal() == "this is a saved snapshot"
        await pilot.press("p")
        assert not app.poller.paused


# --- the other views --------------------------------------------------------------------------


async def test_requests_in_flight_oldest_first_and_enter_opens_the_task(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("4")
        in_flight = table(app, "#in-flight")
        await wait_for(pilot, lambda: in_flight.row_count == len(blocked.requests))
        assert in_flight.keys[0] == "13"  # GET /reports/weekly, 5 minutes old
        assert not app.query_one("#request-detail").display  # every request has a record
        assert table(app, "#routes").row_count == 5
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.views.active == "task")
        assert app.query_one(TaskDetailView).task_id == 1061


async def test_a_busy_server_says_its_requests_are_a_sample(blocked) -> None:
    busy = dataclasses.replace(blocked, requests_detailed_every=15, requests_undetailed=4200)
    app = build_app([busy])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("4")
        note = app.query_one("#request-detail")
        await wait_for(pilot, lambda: note.display)
        text = text_of(app, "#request-detail")
        assert "1 in 15 requests is recorded in full" in text and "4,200" in text


async def test_a_request_in_the_threadpool_jumps_to_its_thread(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        app.action_open_request(100)
        await pilot.pause()
        await pilot.press("h")
        await wait_for(pilot, lambda: app.views.active == "threads")
        assert table(app, "#threads-table").cursor_key == "140100"
        assert "legacy.py:23" in text_of(app, "#thread-stack")


async def test_threads_gauge_and_borrowers(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("6")
        await wait_for(pilot, lambda: table(app, "#borrowers-table").row_count == 40)
        gauge = text_of(app, "#threadpool-gauge")
        assert "40/40 borrowed" in gauge and "10 waiting" in gauge
        assert table(app, "#threads-table").keys[0] == "139900"  # the loop thread first


async def test_background_jobs_show_state_and_traceback(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("5")
        jobs = table(app, "#background-table")
        await wait_for(pilot, lambda: jobs.row_count == 5)
        states = {key: jobs.get_row(key)[2] for key in jobs.keys}
        assert sorted(s[0] if isinstance(s, tuple) else s for s in states.values()) == [
            "done",
            "done",
            "dropped",
            "failed",
            "skipped",
        ]
        failed = next(key for key, state in states.items() if state == ("failed", "error"))
        jobs.move_to_key(failed)
        await pilot.pause()
        detail = text_of(app, "#background-detail")
        assert (
            "SMTPConnectError" in detail and "notify.py:14" in detail and "POST /checkout" in detail
        )


async def test_stalls_timeline_with_sampled_stacks(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("7")
        stalls = table(app, "#stalls-table")
        await wait_for(pilot, lambda: stalls.row_count == 4)
        first = stalls.get_row(stalls.keys[0])
        assert (
            first[0] == ("now", "error") and first[4] == "time.sleep" and first[5] == "GET /export"
        )
        detail = text_of(app, "#stall-detail")
        assert "blocked now" in detail and "9 samples" in detail and "app.py:57" in detail


async def test_exceptions_nobody_saw_with_tracebacks(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("8")
        errors = table(app, "#exceptions-table")
        await wait_for(pilot, lambda: errors.row_count == 4)
        errors.move_to_key(
            next(k for k in errors.keys if errors.get_row(k)[1] == "task failed, never awaited")
        )
        await pilot.pause()
        detail = text_of(app, "#exception-detail")
        assert "ValueError" in detail and "stock.py:30" in detail and "seen 3 times" in detail


async def test_events_are_kept_after_the_target_forgets_them(blocked) -> None:
    source = FakeSource([blocked])
    app = build_app([], source=source)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        source.push(
            dataclasses.replace(blocked, taken_at=blocked.taken_at + 5, stalls=(), exceptions=())
        )
        await wait_for(pilot, lambda: app.observation.snapshot.taken_at > blocked.taken_at)
        await pilot.press("7")
        stalls = table(app, "#stalls-table")
        await wait_for(pilot, lambda: stalls.row_count == 4)
        assert not any(s.ongoing for s in app.observation.events.stalls)  # it ended meanwhile
        assert not app.query_one(StallBanner).display


@pytest.mark.parametrize(
    ("source", "capabilities", "said", "hint", "why"),
    [
        (
            "aiomonitor",
            ("tasks", "stacks", "cancel"),
            "need the inspector agent",
            "inspector run",
            "no inspector agent",
        ),
        (
            "agent",
            ("tasks", "stacks", "stalls", "cancel"),
            "does not track",
            "--no-lifecycle",
            "--no-lifecycle",
        ),
    ],
    ids=["plain-aiomonitor", "agent-without-lifecycle"],
)
async def test_views_say_what_their_source_does_not_report(
    healthy, source: str, capabilities: tuple[str, ...], said: str, hint: str, why: str
) -> None:
    limited = dataclasses.replace(
        healthy,
        capabilities=capabilities,
        source=source,
        requests=(),
        routes=(),
        threadpool=None,
    )
    app = build_app([limited])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        findings = app.query_one("#findings-empty")
        await wait_for(pilot, lambda: "Not checked" in str(findings.render()))
        assert why in str(findings.render())
        await pilot.press("4")
        notice = app.query_one("#requests-view .capability-notice")
        await wait_for(pilot, lambda: said in str(notice.render()))
        assert hint in str(notice.render()) and "requests" in str(notice.render())
        await pilot.press("2")
        await wait_for(pilot, lambda: table(app, "#task-table").row_count == len(limited.tasks))


async def test_an_agent_injected_into_a_blocked_loop_says_its_probes_wait_for_the_loop(
    healthy,
) -> None:
    waiting = ("requests", "background", "threadpool", "exceptions")
    limited = dataclasses.replace(
        healthy,
        capabilities=("tasks", "stacks", "stalls", "cancel"),
        health=dataclasses.replace(healthy.health, waiting_for_loop=waiting),
        requests=(),
        routes=(),
        threadpool=None,
    )
    app = build_app([limited])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        findings = app.query_one("#findings-empty")
        await wait_for(pilot, lambda: "Not checked" in str(findings.render()))
        assert "waiting for the blocked loop" in str(findings.render())
        await pilot.press("4")
        notice = app.query_one("#requests-view .capability-notice")
        await wait_for(pilot, lambda: "not tracked yet" in str(notice.render()))
        assert "--no-lifecycle" not in str(notice.render())


# --- connection -------------------------------------------------------------------------------


async def test_disconnect_keeps_the_data_and_reconnects_by_itself(blocked) -> None:
    source = FakeSource([blocked])
    app = build_app([], source=source)
    app.poller._backoff = (0.05, 0.1)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        tasks = await show_tasks(pilot, app, len(blocked.tasks))
        source.down = True
        await wait_for(pilot, lambda: app.connection == "disconnected")
        assert app.query_one(ConnectionBanner).display
        assert "disconnected" in text_of(app, "#target-line")
        assert tasks.row_count == len(blocked.tasks)  # the last data stays
        connects = source.connects
        source.down = False
        await wait_for(pilot, lambda: app.connection == "live" and source.connects > connects)
        assert not app.query_one(ConnectionBanner).display


async def test_pause_stops_polling_and_resume_restarts_it(healthy) -> None:
    source = FakeSource([healthy])
    app = build_app([], source=source)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("p")
        assert app.poller.paused and app.connection == "paused"
        source.snapshot_calls.clear()
        await pilot.pause(0.3)
        assert not source.snapshot_calls.is_set()
        await pilot.press("p")
        await wait_for(pilot, source.snapshot_calls.is_set)
        assert app.connection == "live"


async def test_plus_and_minus_change_the_interval(healthy) -> None:
    app = build_app([healthy], interval=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("plus")
        assert app.poller.interval == 2.0
        await pilot.press("minus", "minus")
        assert app.poller.interval == 0.5


async def test_save_writes_the_snapshot_in_the_current_directory(
    blocked, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: app.saved_paths)
        path = app.saved_paths[0]
        assert path.parent == tmp_path and path.name.startswith("inspector-snapshot-48213-")
        assert protocol.decode_snapshot_file(path.read_text()) == blocked


async def test_number_keys_help_and_palette(healthy) -> None:
    app = build_app([healthy])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        for key, view in zip(
            "12345678",
            (
                "findings",
                "tasks",
                "task",
                "requests",
                "background",
                "threads",
                "stalls",
                "exceptions",
            ),
            strict=False,
        ):
            await pilot.press(key)
            assert app.views.active == view
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        commands = [c.title for c in palette.commands(app)]  # the palette's own provider
        assert "Show Stalls" in commands and "Save snapshot" in commands


async def test_usable_at_80_by_24(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=(80, 24)) as pilot:
        await until_applied(pilot)
        assert app.screen.has_class("-narrow")
        tabs = [str(app.views.get_tab(v).label) for v in ("findings", "exceptions")]
        assert tabs == ["1 Find 6", "8 Exc 4"]
        tasks = await show_tasks(pilot, app)
        assert tasks.size.width <= 80
        assert isinstance(app.query_one(FindingItem), FindingItem)


class CountingSource(FakeSource):
    """Counts fetches."""

    fetches = 0

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        self.fetches += 1
        return await super().snapshot(with_stacks=with_stacks)


async def test_a_blocked_loop_is_polled_faster_until_it_runs_again(healthy) -> None:
    blocked = load("blocked")
    assert blocked.ongoing_stall is not None
    source = CountingSource([blocked])
    app = build_app([], source=source, interval=5.0)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await wait_for(pilot, lambda: source.fetches >= 3, timeout=3.0)
        source.push(healthy)  # the loop runs again: back to the chosen interval
        await wait_for(pilot, lambda: app.observation.snapshot is healthy, timeout=3.0)
        fetches = source.fetches
        await pilot.pause(1.0)
        assert source.fetches == fetches

"""Views ask the app with messages: links, Enter on a stack line, the Workers table."""

from __future__ import annotations

from textual.message import Message

from inspector.tui.messages import CopyLocation, OpenRequest, OpenThread
from inspector.tui.views.task_detail import TaskDetailView
from inspector.tui.widgets.links import LinkedText
from tests.tui.conftest import build_app, until_applied, wait_for

SIZE = (120, 36)


async def test_enter_on_a_stack_line_asks_the_app_to_copy_it(blocked) -> None:
    posted: list[Message] = []
    app = build_app([blocked])
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        await until_applied(pilot)
        app.action_open_task(1057)
        detail = app.query_one(TaskDetailView)
        await wait_for(pilot, lambda: detail.frames.row_count > 0)
        detail.frames.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.clipboard == "/srv/shop/orders.py:41")
    assert any(isinstance(m, CopyLocation) for m in posted)


async def test_links_in_a_tasks_facts_open_its_request_and_its_thread(blocked) -> None:
    posted: list[Message] = []
    app = build_app([blocked])
    async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
        await until_applied(pilot)
        app.action_open_task(1061)
        facts = app.query_one("#task-facts", LinkedText)
        await wait_for(pilot, lambda: "Serving" in str(facts.render()))
        # The tab switch to Task finishes first: a late one would switch back from Requests.
        await wait_for(pilot, lambda: app.views.active == "task")
        await pilot.pause()
        await facts.run_action("open_request(100)")  # what clicking "Serving …" runs
        await wait_for(pilot, lambda: app.views.active == "requests")
        await facts.run_action("open_thread(140100)")
        await wait_for(pilot, lambda: app.views.active == "threads")
    asked = dict.fromkeys(m for m in posted if isinstance(m, (OpenRequest, OpenThread)))
    assert [type(m) for m in asked] == [OpenRequest, OpenThread]  # each seen on its way up

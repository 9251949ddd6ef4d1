"""Tables use the width they have: columns widen to their text (places and requests first), and
tasks get short ids a person can type into `/`."""

from __future__ import annotations

import dataclasses

from inspector.model import TaskInfo
from inspector.tui.task_rows import ShortIds
from inspector.tui.widgets.live_table import LiveTable
from tests.tui.conftest import build_app, until_applied, wait_for


def shown_lines(table: LiveTable) -> list[str]:
    """The table's lines as drawn: header first."""
    lines = []
    for y in range(min(table.size.height, table.row_count + 1)):
        lines.append("".join(segment.text for segment in table.render_line(y)))
    return lines


async def test_at_200_columns_nothing_that_fits_is_cut(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=(200, 60)) as pilot:
        await until_applied(pilot)
        await pilot.press("2")
        tasks = app.query_one("#task-table", LiveTable)
        await wait_for(pilot, lambda: tasks.row_count == len(blocked.tasks))
        await pilot.pause()
        lines = shown_lines(tasks)
        assert not any("…" in line for line in lines)
        for key in tasks.keys[: len(lines) - 1]:
            where = tasks.get_row(key)[5]
            assert any(where in line for line in lines), where


async def test_with_some_room_the_places_widen_before_the_rest(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=(100, 30)) as pilot:
        await until_applied(pilot)
        await pilot.press("2")
        tasks = app.query_one("#task-table", LiveTable)
        await wait_for(pilot, lambda: tasks.row_count > 0)
        widths = {column.key: width for _, column, width in tasks._layout(tasks.size.width)}
        assert sum(widths.values()) + len(widths) + 1 <= tasks.size.width
        longest_place = max(len(tasks.get_row(key)[5]) for key in tasks.keys)
        assert widths["where"] == longest_place > 24  # before "Waits for", the flex column


def task(task_id: int, age: float) -> TaskInfo:
    return TaskInfo(id=task_id, name=f"Task-{task_id}", state="pending", coro="c", age=age)


def test_short_ids_number_the_oldest_first_and_stay_for_a_tasks_life() -> None:
    first = ShortIds({}, 1).follow([task(140025873421312, 1.0), task(140025873421999, 9.0)])
    assert first.numbers == {140025873421999: 1, 140025873421312: 2}
    second = first.follow([task(140025873421312, 2.0), task(7, 0.1)])
    assert second.numbers == {140025873421312: 2, 7: 3}  # #1 left; its number is not reused


async def test_a_short_id_is_shown_and_found_with_slash(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=(120, 36)) as pilot:
        await until_applied(pilot)
        await pilot.press("2")
        tasks = app.query_one("#task-table", LiveTable)
        await wait_for(pilot, lambda: tasks.row_count == len(blocked.tasks))
        oldest = tasks.keys[0]
        assert tasks.get_row(oldest)[0] == "#1"
        await pilot.press("slash", *"#1")
        await wait_for(pilot, lambda: tasks.keys == [oldest])
        await pilot.press("enter", "enter")
        await wait_for(pilot, lambda: app.views.active == "task")
        assert "#1" in str(app.query_one("#task-facts").render())


async def test_widths_follow_new_longer_text(blocked) -> None:
    long_name = dataclasses.replace(blocked.tasks[0], name="x" * 60)
    app = build_app([dataclasses.replace(blocked, tasks=(long_name, *blocked.tasks[1:]))])
    async with app.run_test(size=(200, 60)) as pilot:
        await until_applied(pilot)
        await pilot.press("2")
        tasks = app.query_one("#task-table", LiveTable)
        await wait_for(pilot, lambda: tasks.row_count == len(blocked.tasks))
        assert any("x" * 60 in line for line in shown_lines(tasks))

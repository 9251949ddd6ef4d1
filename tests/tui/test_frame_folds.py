"""Just my code: library runs fold into one line, the inspector never shows itself, the line to
fix is marked and the cursor starts on it; `f` shows every frame, enter opens one run."""

from __future__ import annotations

import dataclasses

from inspector.model import Frame, StackSample, Stall
from inspector.tui import formatting
from inspector.tui.frame_folds import CUT, Folded, Shown, fold_frames
from inspector.tui.views.stalls import stall_content
from inspector.tui.views.task_detail import TaskDetailView
from inspector.tui.widgets.detail_pane import DetailPane, marked_line
from inspector.tui.widgets.live_table import LiveTable
from inspector.tui.widgets.stack_text import stack_content
from tests.tui.conftest import build_app, until_applied, wait_for
from tests.tui.deep_stacks import deep

SIZE = (120, 36)
SITE = "/srv/shop/.venv/lib/python3.11/site-packages"
LIB = Frame(f"{SITE}/starlette/routing.py", 76, "app", "await f(request)")
STD = Frame("/usr/lib64/python3.11/asyncio/locks.py", 114, "acquire", "await fut")
OWN = Frame(f"{SITE}/inspector/agent/instrumented.py", 88, "__call__", "await self.app(...)")
APP = Frame("/srv/shop/orders.py", 41, "reserve_and_charge", "async with payment_lock:")
CALLER = Frame("/srv/shop/routes.py", 12, "charge", "await reserve_and_charge(order)")


def shape(lines) -> list[str]:
    out = []
    for line in lines:
        if isinstance(line, Folded):
            out.append(line.label())
        elif isinstance(line, Shown):
            out.append(f"{'▶' if line.innermost_app else ''}{line.index}")
        else:
            out.append("cut")
    return out


def test_runs_of_library_frames_fold_and_the_innermost_frame_stays() -> None:
    frames = (LIB, LIB, OWN, LIB, CALLER, LIB, STD, APP, STD, STD)
    assert shape(fold_frames(frames)) == [
        "… 3 library frames · 1 inspector frame hidden",
        "4",
        "… 2 library frames",
        "▶7",
        "… 1 library frame",
        "9",
    ]


def test_the_frames_that_run_the_loop_are_never_the_line_to_fix() -> None:
    main = Frame("/srv/shop/main.py", 9, "<module>", "uvicorn.run(app)")
    run = Frame("/usr/lib64/python3.11/asyncio/runners.py", 118, "Runner.run", "return …")
    dispatch = Frame("/usr/lib64/python3.11/asyncio/events.py", 84, "Handle._run", "self._co…")
    lines = fold_frames((main, LIB, run, LIB, dispatch, LIB, STD))
    assert not any(isinstance(line, Shown) and line.innermost_app for line in lines)
    assert shape(fold_frames((main, run, dispatch, LIB, APP, STD)))[-2] == "▶4"


def test_showing_all_frames_still_hides_the_inspector() -> None:
    frames = (LIB, OWN, OWN, APP, STD)
    assert shape(fold_frames(frames, show_all=True)) == [
        "0",
        "… 2 inspector frames hidden",
        "▶3",
        "4",
    ]


def test_one_run_opens_and_a_cut_is_never_folded_across() -> None:
    frames = (LIB, LIB, APP, LIB, LIB, STD)
    assert shape(fold_frames(frames, expanded={0})) == ["0", "1", "▶2", "… 2 library frames", "5"]
    lines = fold_frames((LIB, LIB, LIB, APP), cut_at=1)
    assert lines[1] is CUT and shape(lines) == [
        "… 1 library frame",
        "cut",
        "… 2 library frames",
        "▶3",
    ]


def test_a_traceback_folds_and_marks_the_line_to_fix() -> None:
    formatting.set_project_root("/srv/shop")
    text = stack_content((LIB, LIB, OWN, CALLER, APP, STD)).plain.splitlines()
    assert text[0] == "  … 2 library frames · 1 inspector frame hidden"
    assert text[3] == "▶ orders.py:41 in reserve_and_charge"
    assert not any("instrumented" in line for line in text)


async def test_f_shows_every_frame_and_enter_opens_a_run(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        app.action_open_task(1057)
        detail = app.query_one(TaskDetailView)
        frames = detail.frames
        await wait_for(pilot, lambda: frames.row_count > 0)
        assert frames.keys == ["fold:0", "5", "6"]
        assert frames.cursor_key == "5"  # the innermost application frame
        await pilot.press("f")
        await wait_for(pilot, lambda: frames.row_count == 7)
        assert frames.cursor_key == "5"
        await pilot.press("f")
        await wait_for(pilot, lambda: frames.row_count == 3)
        await pilot.press("home", "enter")  # the folded run
        await wait_for(pilot, lambda: frames.row_count == 7)
        assert frames.cursor_key == "0"
        await pilot.press("f", "f")  # every frame, then folded again: that run too
        await wait_for(pilot, lambda: frames.row_count == 3)


async def test_the_detail_pane_scrolls_to_the_line_to_fix(blocked) -> None:
    recursion = tuple(
        Frame("/srv/shop/tree.py", 30, "walk", "await walk(node.left)") for _ in range(20)
    )
    leaf = Frame("/srv/shop/tree.py", 28, "walk", "total += expensive(node)")
    stall = Stall(
        id=9,
        started_at=blocked.taken_at - 3.0,
        duration=2.6,
        ongoing=False,
        samples=(StackSample(offset=0.1, frames=(LIB, *recursion, leaf, STD), count=5),),
    )
    app = build_app([dataclasses.replace(blocked, stalls=(stall,))])
    async with app.run_test(size=(80, 24)) as pilot:
        await until_applied(pilot)
        await pilot.press("7")
        pane = app.query_one("#stalls-view DetailPane", DetailPane)
        await wait_for(pilot, lambda: "tree.py:28" in str(app.query_one("#stall-detail").render()))
        await wait_for(pilot, lambda: pane.scroll_y > 0)
        content = stall_content(stall).content()
        line = marked_line(content, pane.scrollable_content_region.width)
        assert line is not None
        assert pane.scroll_y <= line < pane.scroll_y + pane.scrollable_content_region.height


async def test_a_cursor_in_the_traceback_picks_the_line_to_copy_or_edit(blocked) -> None:
    app = build_app([deep(blocked)])
    async with app.run_test(size=(120, 36)) as pilot:
        await until_applied(pilot)
        await pilot.press("8")
        errors = app.query_one("#exceptions-table", LiveTable)
        await wait_for(pilot, lambda: errors.row_count == 1)
        pane = app.query_one("#exceptions-view DetailPane", DetailPane)
        await wait_for(pilot, lambda: pane.current_frame is not None)
        assert pane.current_frame.location == "/srv/shop/payments.py:77"  # the line to fix
        await pilot.press("tab")
        await wait_for(pilot, lambda: pane.has_focus)
        await pilot.press("up")
        assert pane.current_frame.location == "/srv/shop/webhooks.py:31"
        await pilot.press("c")
        assert app.clipboard == "/srv/shop/webhooks.py:31"
        await pilot.press("down", "down", "down")  # stops at the last frame
        assert pane.current_frame.location == "/srv/shop/payments.py:77"


async def test_a_click_on_a_frame_puts_the_cursor_on_it(blocked) -> None:
    app = build_app([deep(blocked)])
    async with app.run_test(size=(120, 36)) as pilot:
        await until_applied(pilot)
        await pilot.press("8")
        pane = app.query_one("#exceptions-view DetailPane", DetailPane)
        await wait_for(pilot, lambda: pane.current_frame is not None)
        lines = pane.text.content().plain.splitlines()
        webhook = next(i for i, line in enumerate(lines) if "webhooks.py:31" in line)
        border = pane.region.height - pane.scrollable_content_region.height
        await pilot.click(pane, offset=(6, border + webhook))
        await wait_for(pilot, lambda: pane.has_focus)
        assert pane.current_frame.location == "/srv/shop/webhooks.py:31"


async def test_enter_on_a_folded_run_in_a_traceback_opens_it(blocked) -> None:
    app = build_app([deep(blocked)])
    async with app.run_test(size=(120, 36)) as pilot:
        await until_applied(pilot)
        await pilot.press("8")
        pane = app.query_one("#exceptions-view DetailPane", DetailPane)
        await wait_for(pilot, lambda: pane.current_frame is not None)
        folded = len(pane.text.lines)
        await pilot.press("tab", "up", "up")  # past webhooks.py:31, onto "… 13 library frames"
        assert pane.current_frame is None
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(pane.text.lines) > folded)
        assert "library frames" not in pane.text.plain
        assert "1 inspector frame hidden" in pane.text.plain  # opened, still never shown
        assert pane.current_frame.function == "__call__"  # the run's first frame

"""`sync-async-deadlock`: the loop waiting for itself, however the wait is written, and a worker
thread waiting on the loop while a task waits on that worker."""

from __future__ import annotations

import dataclasses

from inspector.diagnose.rules.base import Settings
from inspector.diagnose.rules.loop import loop_blocked
from inspector.diagnose.rules.sync_async import sync_async_deadlocks
from tests.diagnose.factories import loop_stack, task_stack
from tests.factories import app, request, snapshot, stall, std, task, thread, wait

RESULT = std("concurrent/futures/_base.py", 451, "Future.result", "if self._condition.wait(t):")
CONDITION = std("threading.py", 324, "Condition.wait", "gotit = waiter.acquire(True, timeout)")
SPLIT = app(46, "rate_blocking", "return pending.result(timeout=2)")


def test_a_wait_split_over_two_lines_is_known_by_what_the_agent_saw() -> None:
    frames = loop_stack(app(70, "price"), SPLIT, RESULT, CONDITION)
    unknown = stall(1, 2.0, frames, request_label="GET /price")
    assert list(sync_async_deadlocks(snapshot(stalls=(unknown,)), Settings())) == []
    assert len(list(loop_blocked(snapshot(stalls=(unknown,)), Settings()))) == 1
    seen = dataclasses.replace(unknown, waits_for_own_loop=True)
    [finding] = sync_async_deadlocks(snapshot(stalls=(seen,)), Settings())
    assert finding.location == SPLIT
    assert finding.severity == "critical"
    assert list(loop_blocked(snapshot(stalls=(seen,)), Settings())) == []


def _render_cycle(worker_code: str, *, same_request: bool = True, age: float = 9.0) -> tuple:
    awaiting = app(28, "render", "return await asyncio.to_thread(self._render_sync, invoice)")
    worker_line = app(34, "_render_sync", worker_code)
    logo_line = app(40, "_company_logo", "async with self._lock:")
    holder = task(
        1,
        stack=task_stack(awaiting),
        waiting_on=wait("thread", "to_thread(_render_sync) in thread 77", thread_id=77),
        request_id=5,
    )
    lock = wait("lock", "Lock held by Task-1", object_id=9, holder_task_ids=(1,))
    blocked = task(2, stack=(logo_line,), waiting_on=lock, request_id=5 if same_request else None)
    worker = thread(
        77,
        std("threading.py", 1045, "_bootstrap_inner", "self.run()"),
        worker_line,
        RESULT,
        CONDITION,
        name="asyncio_0",
        pool="executor",
    )
    r = request(5, "GET", "/reports/inv-42.pdf", route="/reports/{name}.pdf", age=age, task_id=1)
    shot = snapshot(tasks=(holder, blocked), threads=(worker,), requests=(r,))
    return shot, awaiting, worker_line, logo_line


def test_a_worker_waiting_on_the_loop_while_its_awaiter_holds_the_lock_it_needs() -> None:
    shot, awaiting, worker_line, logo_line = _render_cycle(
        "logo = asyncio.run_coroutine_threadsafe(fetch, loop).result()"
    )
    [finding] = sync_async_deadlocks(shot, Settings(stuck_after=1.0))
    assert finding.location == worker_line
    assert finding.related == (awaiting, logo_line)
    assert finding.request == "GET /reports/{name}.pdf"
    assert finding.task_ids == (1, 2)


def test_a_split_worker_wait_counts_when_the_blocked_task_is_the_same_requests() -> None:
    shot, *_ = _render_cycle("logo = pending.result()")
    assert len(list(sync_async_deadlocks(shot, Settings(stuck_after=1.0)))) == 1
    shot, *_ = _render_cycle("logo = pending.result()", same_request=False)
    assert list(sync_async_deadlocks(shot, Settings(stuck_after=1.0))) == []


def test_a_young_wait_is_not_yet_a_deadlock() -> None:
    shot, *_ = _render_cycle("asyncio.run_coroutine_threadsafe(f, loop).result()", age=0.5)
    assert list(sync_async_deadlocks(shot, Settings(stuck_after=1.0))) == []


def test_a_loop_waiting_for_a_worker_that_waits_for_the_loop_names_that_worker() -> None:
    loop_line = app(59, "preview", "return job.result(timeout=3)")
    worker_line = app(63, "_render_thumbnail", "return mark.result(timeout=5) + invoice.encode()")
    awaited_line = app(40, "_render_sync", "logo = pending.result()")
    blocked = stall(
        1, 1.2, loop_stack(loop_line, RESULT, CONDITION), ongoing=True, request_label="GET /p"
    )
    blocked = dataclasses.replace(blocked, waits_for_own_loop=True)
    worker = thread(8, worker_line, RESULT, CONDITION, name="thumbnails_0", pool="other")
    other = thread(9, awaited_line, RESULT, CONDITION, name="asyncio_0", pool="other")
    awaiting = task(3, waiting_on=wait("thread", "to_thread(_render_sync)", thread_id=9))
    shot = snapshot(stalls=(blocked,), threads=(other, worker), tasks=(awaiting,))
    [finding] = sync_async_deadlocks(shot, Settings())
    assert finding.location == loop_line
    assert finding.related == (worker_line,)
    assert "through worker thread 'thumbnails_0'" in finding.detail

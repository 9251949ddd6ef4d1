"""`task-leak`: tasks piling up, started by requests that have finished and never stopped.

Each request starts a task (a watcher, a poller, a per-user subscription) and nothing ever ends
it: every one is healthy on its own, a periodic sleep or an idle wait, so no single task is
stuck. What gives it away is the pile: many live tasks running the same coroutine at the same
line, each created by a request that is long gone, their ages spread over the server's life.
Memory and the loop's work grow with traffic until the worker is restarted.
"""

from __future__ import annotations

from collections.abc import Iterable

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import innermost_application_frame
from inspector.diagnose.rules.base import Settings, plural, quoted_code, seconds, where
from inspector.diagnose.wait_graph import LIVE_STATES
from inspector.model import Snapshot, TaskInfo

MIN_PILE = 20
"""Fewer tasks than this at one line is a pool, not a leak."""
HINT = (
    "Give each task an end: stop it when its request or its user goes (keep it in a dict by "
    "key and cancel it there), bound it with `asyncio.timeout(...)`, or run one shared task "
    "for all requests instead of one per request."
)


def task_leaks(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """One finding per coroutine and line where tasks of finished requests pile up."""
    in_flight = {request.id for request in snapshot.requests}
    piles: dict[tuple[str, str | None, int | None], list[TaskInfo]] = {}
    for task in snapshot.tasks:
        if task.state not in LIVE_STATES or task.request_id is None:
            continue
        if task.request_id in in_flight:
            continue  # its request is still going: it may end with it
        frame = innermost_application_frame(task.stack)
        key = (task.coro, frame.file if frame else None, frame.line if frame else None)
        piles.setdefault(key, []).append(task)
    for tasks in piles.values():
        ages = sorted(task.age for task in tasks if task.age is not None)
        if len(tasks) < MIN_PILE or not ages or ages[-1] < settings.stuck_after:
            continue
        yield _finding(snapshot, tasks, ages)


def _finding(snapshot: Snapshot, tasks: list[TaskInfo], ages: list[float]) -> Finding:
    first = tasks[0]
    location = innermost_application_frame(first.stack)
    coro = first.coro.rsplit(".", 1)[-1]
    requests = {task.request_id for task in tasks}
    spread = ages[-1] - ages[0]
    rate = (len(ages) - 1) / spread if spread > 0 else None
    pace = f", about {_per_minute(rate)}" if rate else ""
    doing = f" They wait at {where(location, snapshot)}{quoted_code(location)}." if location else ""
    return Finding(
        kind="task-leak",
        severity="warning",
        title=f"{plural(len(tasks), 'task')} running {coro}() pile up{pace}",
        detail=(
            f"{plural(len(tasks), 'live task')} run {coro}(), started by "
            f"{plural(len(requests), 'request')} that have all finished; the oldest is "
            f"{seconds(ages[-1])} old, the newest {seconds(ages[0])}. Nothing ends them, so "
            f"their number grows with traffic.{doing}"
        ),
        hint=HINT,
        location=location,
        task_ids=tuple(sorted(task.id for task in tasks))[:50],
        count=len(tasks),
    )


def _per_minute(rate: float) -> str:
    """ "3 more a minute", "2 more a second"."""
    if rate >= 1:
        return f"{rate:.0f} more a second"
    return f"{max(1, round(rate * 60))} more a minute"

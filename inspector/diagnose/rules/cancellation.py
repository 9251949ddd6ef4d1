"""`cancellation-swallowed`: a task was cancelled and went on running.

`task.cancel()` throws `CancelledError` into the task; a bare `except:`, an `except
BaseException:` or a retry loop that catches everything takes it and carries on. The caller
believes the work stopped: a timeout that should have ended a request, a shutdown, a restart
that now runs two copies side by side. Python >= 3.11 counts the cancellations requested of a
task until it takes one back (`uncancel()`, as `asyncio.timeout` and TaskGroup do at once); the
agent notes when it first saw one pending, and a task still not done long after is this bug.
"""

from __future__ import annotations

from collections.abc import Iterable

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import innermost_application_frame
from inspector.diagnose.rules.base import (
    Settings,
    distinct_frames,
    plural,
    quoted_code,
    request_label_for,
    seconds,
    task_label,
    where,
)
from inspector.diagnose.wait_graph import LIVE_STATES
from inspector.model import Snapshot, TaskInfo

HINT = (
    "Let `CancelledError` through: catch `Exception` rather than everything (`except:` and "
    "`except BaseException:` take cancellation too), or re-raise it "
    "(`except asyncio.CancelledError: ...; raise`). Clean up in `finally:` instead."
)


def swallowed_cancellations(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """One finding per coroutine and line where tasks run on long after they were cancelled
    (each restart of a stubborn worker leaves one more behind: one bug, said once)."""
    groups: dict[tuple[str, str | None, int | None], list[TaskInfo]] = {}
    for task in snapshot.tasks:
        if task.state not in LIVE_STATES or task.cancelled_for is None:
            continue
        if task.cancelled_for < settings.stuck_after:
            continue
        frame = innermost_application_frame(task.stack)
        key = (task.coro, frame.file if frame else None, frame.line if frame else None)
        groups.setdefault(key, []).append(task)
    for tasks in groups.values():
        yield _finding(snapshot, tasks)


def _finding(snapshot: Snapshot, tasks: list[TaskInfo]) -> Finding:
    first = max(tasks, key=lambda task: task.cancelled_for or 0.0)
    location = innermost_application_frame(first.stack)
    request = request_label_for(snapshot, first.request_id)
    serving = f", started by {request}," if request else ""
    at = f" It is now at {where(location, snapshot)}{quoted_code(location)}." if location else ""
    label = task_label(first)
    label = label[:1].upper() + label[1:]
    catchers = first.cancel_catchers
    places = ", ".join(where(frame, snapshot) + quoted_code(frame) for frame in catchers)
    caught = f" Its code catches it at {places}." if catchers else ""
    others = (
        f" {plural(len(tasks) - 1, 'more task')} running the same code did the same."
        if len(tasks) > 1
        else ""
    )
    return Finding(
        kind="cancellation-swallowed",
        severity="warning",
        title=f"{label} kept running after it was cancelled"
        + (f" ({len(tasks)} tasks)" if len(tasks) > 1 else ""),
        detail=(
            f"{label}{serving} was cancelled {seconds(first.cancelled_for or 0.0)} ago and is "
            "still not done: something caught `CancelledError` and went on, so whoever "
            f"cancelled it believes it stopped.{at}{caught}{others}"
        ),
        hint=HINT,
        location=location,
        related=distinct_frames((f for task in tasks for f in task.cancel_catchers), location),
        task_ids=tuple(sorted(task.id for task in tasks)),
        request=request,
        count=len(tasks),
    )

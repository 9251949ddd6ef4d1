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
    quoted_code,
    request_label_for,
    seconds,
    task_label,
    where,
)
from inspector.diagnose.wait_graph import LIVE_STATES
from inspector.model import Snapshot

HINT = (
    "Let `CancelledError` through: catch `Exception` rather than everything (`except:` and "
    "`except BaseException:` take cancellation too), or re-raise it "
    "(`except asyncio.CancelledError: ...; raise`). Clean up in `finally:` instead."
)


def swallowed_cancellations(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """One finding per task still running long after it was cancelled."""
    for task in snapshot.tasks:
        if task.state not in LIVE_STATES or task.cancelled_for is None:
            continue
        if task.cancelled_for < settings.stuck_after:
            continue
        location = innermost_application_frame(task.stack)
        request = request_label_for(snapshot, task.request_id)
        serving = f", started by {request}," if request else ""
        at = (
            f" It is now at {where(location, snapshot)}{quoted_code(location)}." if location else ""
        )
        label = task_label(task)
        label = label[:1].upper() + label[1:]
        yield Finding(
            kind="cancellation-swallowed",
            severity="warning",
            title=f"{label} kept running after it was cancelled",
            detail=(
                f"{label}{serving} was cancelled "
                f"{seconds(task.cancelled_for)} ago and is still not done: something caught "
                f"`CancelledError` and went on, so whoever cancelled it believes it stopped.{at}"
            ),
            hint=HINT,
            location=location,
            task_ids=(task.id,),
            request=request,
        )

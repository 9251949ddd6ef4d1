"""The rules: each a pure function `(snapshot, settings) -> Iterable[Finding]`, one module per
family. `RULES` is the registry `diagnose()` runs, in this order."""

from __future__ import annotations

from typing import Final

from inspector.diagnose.rules.background import (
    background_failed,
    background_not_run,
    background_skipped,
)
from inspector.diagnose.rules.base import Rule, Settings
from inspector.diagnose.rules.cancellation import swallowed_cancellations
from inspector.diagnose.rules.contention import lock_contention
from inspector.diagnose.rules.exceptions import (
    destroyed_pending_tasks,
    logged_errors,
    never_awaited,
    swallowed_exceptions,
    unretrieved_task_exceptions,
)
from inspector.diagnose.rules.leaks import task_leaks
from inspector.diagnose.rules.loop import loop_blocked
from inspector.diagnose.rules.pools import pool_exhausted
from inspector.diagnose.rules.requests import hanging_requests
from inspector.diagnose.rules.saturation import loop_saturated
from inspector.diagnose.rules.sync_async import sync_async_deadlocks
from inspector.diagnose.rules.tasks import deadlocks, stuck_tasks
from inspector.diagnose.rules.threadpool import threadpool_saturated

RULES: Final[dict[str, Rule]] = {
    "sync-async-deadlock": sync_async_deadlocks,
    "loop-blocked": loop_blocked,
    "loop-saturated": loop_saturated,
    "deadlock": deadlocks,
    "hanging-request": hanging_requests,
    "stuck-task": stuck_tasks,
    "lock-contention": lock_contention,
    "pool-exhausted": pool_exhausted,
    "task-leak": task_leaks,
    "cancellation-swallowed": swallowed_cancellations,
    "threadpool-saturated": threadpool_saturated,
    "background-failed": background_failed,
    "background-not-run": background_not_run,
    "background-skipped": background_skipped,
    "task-exception-unretrieved": unretrieved_task_exceptions,
    "coroutine-never-awaited": never_awaited,
    "task-destroyed-pending": destroyed_pending_tasks,
    "exception-swallowed": swallowed_exceptions,
    "logged-error": logged_errors,
}
"""Kind → the rule that produces it."""

__all__ = ["RULES", "Rule", "Settings"]

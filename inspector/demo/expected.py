"""What the inspector should report about `demo_app.py`, as a table a test can check.

Lines are never written down here: each faulty line of the demo app ends with a marker comment
`# demo: NAME` (NAME is the failure's name below; `# demo: NAME/aside` marks another line the
report may point at for the same failure), and `marker_lines` finds them. A finding matches an
expected entry when its kind is one the entry accepts and its location, or one of its related
locations, is on one of the entry's marked lines.

Some entries accept more than one kind or line: a request parked forever on an Event is both a
stuck task and a hanging request, and a failed background job can be located at its `raise` or
at its `add_task`. The first kind and the `# demo: NAME` line are the ones the demo teaches.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DEMO_APP_FILE: Final = "demo_app.py"
MARKER: Final = re.compile(r"#\s*demo:\s*(?P<tag>[a-z-]+(?:/[a-z-]+)?)\s*$")


@dataclass(frozen=True)
class ExpectedFinding:
    """One failure the demo app contains and the finding that should name it."""

    name: str
    """Short id of the failure, for messages and the walkthrough."""
    kinds: tuple[str, ...]
    """Finding kinds that count; the first is the one the demo teaches."""
    endpoint: str
    """The request that sets it off ("GET /reports/daily")."""
    symptom: str
    fix: str
    min_python: tuple[int, int] = (3, 10)
    """The inspector can only see it from this Python version on."""


EXPECTED: Final[tuple[ExpectedFinding, ...]] = (
    ExpectedFinding(
        "blocking-sleep",
        ("loop-blocked",),
        "GET /reports/daily",
        "Every request freezes for 0.6 s at a time; the server looks idle.",
        "Use `await asyncio.sleep(...)`, or make the endpoint `def` so it runs in the threadpool.",
    ),
    ExpectedFinding(
        "sync-database-call",
        ("loop-blocked",),
        "GET /reports/top-customers",
        "Throughput collapses while the report query runs.",
        "Use an async driver (aiosqlite, asyncpg), or `await run_in_threadpool(...)` the query.",
    ),
    ExpectedFinding(
        "cpu-bound-work",
        ("loop-blocked",),
        "GET /recommendations/{user_id}",
        "Health checks time out while recommendations are computed.",
        "Move CPU work off the loop: a process pool (`loop.run_in_executor`) or a job queue.",
    ),
    ExpectedFinding(
        "sync-async-deadlock",
        ("sync-async-deadlock",),
        "GET /fx/{item_id}/{currency}",
        "Prices in another currency take 2 s, then fail with 503; every request freezes meanwhile.",
        "In async code `await fetch_exchange_rate(...)`; keep the helper for worker threads.",
    ),
    ExpectedFinding(
        "lock-order-deadlock",
        ("deadlock",),
        "POST /accounts/transfer",
        "Two transfers in opposite directions never return.",
        "Always take account locks in one global order (e.g. sorted by account id).",
    ),
    ExpectedFinding(
        "event-never-set",
        ("stuck-task",),
        "(a task started in the lifespan)",
        "Prices never reach the search index; the publisher task waits silently.",
        "Set the Event where the feed finishes loading (`price_feed_ready.set()`).",
    ),
    ExpectedFinding(
        "price-lookup-hangs",
        ("hanging-request", "stuck-task"),
        "GET /pricing/{sku}",
        "Every price lookup hangs forever (the same Event nobody sets).",
        "Set the Event where the feed finishes loading (`price_feed_ready.set()`).",
    ),
    ExpectedFinding(
        "semaphore-leak",
        ("hanging-request", "stuck-task"),
        "GET /exports/{fmt}",
        "Exports work, then after three bad formats every export hangs.",
        "Use `async with export_slots:` so the error path releases the slot too.",
    ),
    ExpectedFinding(
        "queue-consumer-died",
        ("hanging-request", "stuck-task"),
        "POST /inventory/{sku}/adjust",
        "Stock adjustments hang once the queue is full; the consumer died earlier.",
        "Keep the consumer alive (catch and log per message) and watch its task for failure.",
    ),
    ExpectedFinding(
        "consumer-task-died",
        ("task-exception-unretrieved",),
        "POST /inventory/{sku}/adjust",
        "The stock worker stopped; its ValueError shows only at shutdown, if at all.",
        "Handle errors per message inside the loop; add a done callback that logs and restarts.",
    ),
    ExpectedFinding(
        "lock-contention",
        ("lock-contention",),
        "GET /shipping/quote",
        "Quotes take seconds under load though the carrier answers in 0.5 s; the CPU is idle.",
        "Hold the lock for the token refresh only; call the carrier after `async with` ends.",
    ),
    ExpectedFinding(
        "pool-exhausted",
        ("pool-exhausted",),
        "GET /warehouse/stock/{sku}",
        "Stock lookups hang after a few 404s; the warehouse itself is idle.",
        "Give the connection back in a `finally:` (or `async with` a pool context manager).",
    ),
    ExpectedFinding(
        "loop-saturated",
        ("loop-saturated",),
        "GET /search",
        "Every endpoint slows down during a search rush though no request blocks for long.",
        "Index the catalogue (or search in a thread); a linear scan per query saturates the loop.",
    ),
    ExpectedFinding(
        "threadpool-exhausted",
        ("threadpool-saturated",),
        "GET /legacy/inventory-sync",
        "Sync endpoints queue behind 40 busy threads; async endpoints stay fast, CPU is idle.",
        "Make the slow call async, add a timeout, or raise the limiter's total_tokens.",
    ),
    ExpectedFinding(
        "background-task-failed",
        ("background-failed",),
        "POST /checkout",
        "Receipts are not sent; the log has a context-free 'Exception in ASGI application'.",
        "Catch and report errors inside the job, or hand the work to a task queue with retries.",
    ),
    ExpectedFinding(
        "background-task-skipped",
        ("background-skipped",),
        "POST /checkout",
        "Loyalty points are never added when the receipt fails, with no log at all.",
        "Make each background job independent (its own try/except), or enqueue them separately.",
    ),
    ExpectedFinding(
        "background-tasks-dropped",
        ("background-not-run",),
        "POST /signup",
        "Welcome emails are never sent; nothing is logged.",
        "Do not pass `background=` to a Response when you also use injected BackgroundTasks.",
    ),
    ExpectedFinding(
        "add-task-coroutine",
        ("background-not-run", "background-failed", "coroutine-never-awaited"),
        "POST /newsletter/subscribe",
        "The CRM sync never happens; a TypeError and a never-awaited warning follow the 200.",
        "Pass the function and its arguments: `add_task(sync_to_crm, shop, email)`.",
    ),
    ExpectedFinding(
        "slow-background-task",
        ("hanging-request", "background-not-run", "stuck-task"),
        "POST /uploads",
        "Uploaders are notified 20 s late: their job waits behind the thumbnails.",
        "Run long jobs outside the request (a task queue), or enqueue the quick job first.",
    ),
    ExpectedFinding(
        "forgotten-await",
        ("coroutine-never-awaited",),
        "DELETE /orders/{order_id}",
        "Cancellations are missing from the audit log; a RuntimeWarning scrolls by.",
        "Add the missing `await`.",
    ),
    ExpectedFinding(
        "fire-and-forget-failed",
        ("task-exception-unretrieved",),
        "POST /cache/refresh",
        "The cache is never refreshed; 'Task exception was never retrieved' appears at random.",
        "Keep a reference to the task and add a done callback that logs its exception.",
    ),
    ExpectedFinding(
        "task-leak",
        ("task-leak",),
        "POST /items/{item_id}/price-alerts",
        "Memory and CPU creep up with every subscription until the worker is restarted.",
        "Cancel the watcher when the user unsubscribes or goes (keep it by user), or run one "
        "shared watcher for all alerts.",
    ),
    ExpectedFinding(
        "cancellation-swallowed",
        ("cancellation-swallowed",),
        "POST /suppliers/{supplier}/resync",
        "After a resync two catalog syncs run side by side; cancelling the old one did nothing.",
        "Catch `Exception`, not everything: a bare `except:` takes the task's cancellation too.",
        min_python=(3, 11),
    ),
    ExpectedFinding(
        "task-collected",
        ("task-destroyed-pending",),
        "POST /orders/{order_id}/track",
        "Shipping notifications are never sent; 'Task was destroyed but it is pending!' appears.",
        "Keep a strong reference to the task (a set, or a TaskGroup) and to the future it awaits.",
    ),
    ExpectedFinding(
        "client-left",
        ("hanging-request",),
        "GET /summaries/{doc_id}",
        "Summaries keep burning time for clients that gave up long ago.",
        "Check `await request.is_disconnected()` between chunks and stop when it is true.",
    ),
    ExpectedFinding(
        "swallowed-exception",
        ("exception-swallowed",),
        "POST /coupons/apply",
        "Bad coupon codes silently give no discount; nothing is logged.",
        "Catch the specific error (ValueError) and answer 422, or at least log it.",
        min_python=(3, 12),
    ),
    ExpectedFinding(
        "webhook-error-logged",
        ("logged-error",),
        "POST /webhooks/payment",
        "Payments go missing; the provider got a 200 and never retried.",
        "Answer 4xx/5xx when the event was not processed, so the provider retries.",
    ),
)

HEALTHY_ENDPOINTS: Final[tuple[str, ...]] = (
    "GET /health",
    "GET /items",
    "GET /items/{item_id}",
    "POST /cart",
)
"""Endpoints that must never appear in a finding."""

HEALTHY_FUNCTIONS: Final[tuple[str, ...]] = (
    "health",
    "list_items",
    "get_item",
    "add_to_cart",
    "record_cart_metrics",
)


def demo_app_path() -> Path:
    """`demo_app.py` at the root of the source tree this package was imported from, or the
    copy the wheel carries beside this module (``pip install .``, then ``inspector demo``)."""
    here = Path(__file__).resolve()
    in_source_tree = here.parents[2] / DEMO_APP_FILE
    return in_source_tree if in_source_tree.is_file() else here.parent / DEMO_APP_FILE


def marker_lines(path: Path | None = None) -> dict[str, tuple[int, ...]]:
    """Marker tag → the 1-based line numbers that carry it."""
    lines: dict[str, list[int]] = {}
    source = (path or demo_app_path()).read_text(encoding="utf-8")
    for number, text in enumerate(source.splitlines(), start=1):
        match = MARKER.search(text)
        if match:
            lines.setdefault(match.group("tag"), []).append(number)
    return {tag: tuple(numbers) for tag, numbers in lines.items()}


def expected_for(python: Sequence[int] | None = None) -> tuple[ExpectedFinding, ...]:
    """The entries the inspector can report when the demo server runs on `python` (default: this
    interpreter)."""
    version = tuple((python or sys.version_info)[:2])
    return tuple(entry for entry in EXPECTED if version >= entry.min_python)


def entry_lines(
    entry: ExpectedFinding, lines: Mapping[str, tuple[int, ...]] | None = None
) -> tuple[int, ...]:
    """The demo app's lines marked for `entry`: `# demo: NAME` first, then its asides."""
    lines = lines if lines is not None else marker_lines()
    tags = [entry.name] + sorted(tag for tag in lines if tag.startswith(entry.name + "/"))
    return tuple(line for tag in tags for line in lines.get(tag, ()))


@dataclass(frozen=True)
class Match:
    expected: ExpectedFinding
    finding: Mapping[str, Any] | None
    """The first finding (JSON form) that names this failure, or None."""


def match_findings(
    findings: Iterable[Mapping[str, Any]],
    expected: Iterable[ExpectedFinding],
    lines: Mapping[str, tuple[int, ...]] | None = None,
) -> list[Match]:
    """Pair each expected failure with the first finding that names it at a marked line."""
    lines = lines if lines is not None else marker_lines()
    findings = list(findings)
    result = []
    for entry in expected:
        wanted = set(entry_lines(entry, lines))
        found = next(
            (
                finding
                for finding in findings
                if finding.get("kind") in entry.kinds and wanted & set(_demo_lines(finding))
            ),
            None,
        )
        result.append(Match(entry, found))
    return result


def healthy_violations(findings: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Findings that name a healthy endpoint or point into a healthy handler."""
    bad = []
    for finding in findings:
        request = finding.get("request") or ""
        functions = {
            location.get("function")
            for location in _locations(finding)
            if os.path.basename(str(location.get("file", ""))) == DEMO_APP_FILE
        }
        if _is_healthy_request(request) or functions & set(HEALTHY_FUNCTIONS):
            bad.append(finding)
    return bad


def _is_healthy_request(label: str) -> bool:
    """ "GET /items/3" and "GET /items/{item_id}" are healthy; "GET /items/3/x" is not."""
    method, _, path = label.partition(" ")
    for endpoint in HEALTHY_ENDPOINTS:
        healthy_method, _, template = endpoint.partition(" ")
        if method != healthy_method:
            continue
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "/?$"
        if re.match(pattern, path.split("?")[0]):
            return True
    return False


def _locations(finding: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [finding.get("location")] + list(finding.get("related") or [])
    return [location for location in found if isinstance(location, Mapping)]


def _demo_lines(finding: Mapping[str, Any]) -> list[int]:
    return [
        int(location["line"])
        for location in _locations(finding)
        if os.path.basename(str(location.get("file", ""))) == DEMO_APP_FILE
        and isinstance(location.get("line"), int)
    ]

"""`threadpool-saturated`: all worker threads busy with requests waiting."""

from __future__ import annotations

from inspector.model import Borrower
from tests.diagnose.factories import ANYIO_WORKER_FRAMES, findings
from tests.factories import app, lib, request, snapshot, std, thread, threadpool

SLOW = app(18, "sync_report", "time.sleep(3)")
OTHER = app(25, "sync_export", "rows = cursor.fetchall()")


def saturated(total: int = 40, waiting: int = 10, **fields):
    requests = tuple(
        request(i, "GET", "/sync", route="/sync", task_id=1000 + i, age=2.0) for i in range(total)
    )
    borrowers = tuple(Borrower(task_id=1000 + i, request_id=i) for i in range(total))
    threads = tuple(
        thread(i, *ANYIO_WORKER_FRAMES, SLOW if i < total - 2 else OTHER, request_id=i)
        for i in range(total)
    )
    return snapshot(
        requests=requests,
        threads=threads,
        threadpool=threadpool(total, total, waiting, borrowers, **fields),
    )


def test_a_full_threadpool_with_waiters() -> None:
    [finding] = findings(saturated(), "threadpool-saturated")
    assert finding.location == SLOW
    assert finding.related == (OTHER,)
    assert "40/40 threads busy, 10 requests waiting, e.g. GET /sync (x40)" in finding.detail
    assert "38 of the 40 busy threads are at" in finding.detail
    assert "total_tokens" in finding.hint
    assert finding.request == "GET /sync"
    assert finding.severity == "warning"
    assert len(finding.task_ids) == 40


def test_more_waiting_than_threads_is_critical() -> None:
    [finding] = findings(saturated(total=4, waiting=9), "threadpool-saturated")
    assert finding.severity == "critical"


def test_full_without_waiters_or_not_full_is_fine() -> None:
    assert findings(saturated(waiting=0), "threadpool-saturated") == []
    assert findings(snapshot(threadpool=threadpool(40, 39, 0)), "threadpool-saturated") == []


def test_threads_waiting_for_a_database_connection_get_the_pool_hint() -> None:
    checkout = (
        app(12, "get_db", "db = SessionLocal()"),
        lib("sqlalchemy/pool/base.py", 712, "checkout"),
        std("threading.py", 331, "wait"),
    )
    threads = tuple(thread(i, *ANYIO_WORKER_FRAMES, *checkout) for i in range(4))
    snap = snapshot(threads=threads, threadpool=threadpool(4, 4, 3))
    [finding] = findings(snap, "threadpool-saturated")
    assert finding.location == checkout[0]
    assert "connection pool is smaller than the threadpool" in finding.hint


def test_the_default_executor_full() -> None:
    busy = tuple(
        thread(i, *ANYIO_WORKER_FRAMES, SLOW, name=f"asyncio_{i}", pool="executor")
        for i in range(6)
    )
    snap = snapshot(
        threads=busy,
        threadpool=threadpool(
            40, 0, 0, executor_max_workers=6, executor_threads=6, executor_queued=4
        ),
    )
    [finding] = findings(snap, "threadpool-saturated")
    assert "Default executor full" in finding.title
    assert finding.location == SLOW

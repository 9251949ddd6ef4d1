"""`threadpool-saturated`: all worker threads busy with requests waiting."""

from __future__ import annotations

from inspector.model import Borrower, ExecutorState
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


def test_an_executor_of_the_apps_own_full() -> None:
    solver = tuple(
        thread(100 + i, *ANYIO_WORKER_FRAMES, SLOW, name=f"quote-solver_{i}", pool="executor")
        for i in range(4)
    )
    idle_default = thread(200, name="asyncio_0", pool="executor", busy=False)
    pools = (
        ExecutorState("asyncio", 6, thread_ids=(200,), default=True),
        ExecutorState("quote-solver", 4, thread_ids=tuple(t.id for t in solver), busy=4, queued=3),
    )
    snap = snapshot(
        threads=(*solver, idle_default), threadpool=threadpool(40, 0, 0, executors=pools)
    )
    [finding] = findings(snap, "threadpool-saturated")
    assert finding.title == "Executor quote-solver full: 4/4 threads busy, 3 jobs queued"
    assert finding.location == SLOW
    assert "max_workers" in finding.hint


def test_uvloops_default_executor_full_is_the_default_executor() -> None:
    workers = tuple(
        thread(300 + i, *ANYIO_WORKER_FRAMES, SLOW, name=f"uvloop_{i}", pool="executor")
        for i in range(6)
    )
    pools = (ExecutorState("uvloop", 6, tuple(t.id for t in workers), 6, 18, default=True),)
    snap = snapshot(threads=workers, threadpool=threadpool(40, 0, 0, executors=pools))
    [finding] = findings(snap, "threadpool-saturated")
    assert finding.title.startswith("Default executor full: 6/6 threads busy, 18 jobs queued")


def test_an_executor_with_a_free_thread_or_no_queue_is_fine() -> None:
    pools = (
        ExecutorState("quote-solver", 4, thread_ids=(1, 2, 3), busy=3, queued=2),
        ExecutorState("asyncio", 6, thread_ids=(4, 5, 6, 7, 8, 9), busy=6, default=True),
    )
    snap = snapshot(threadpool=threadpool(40, 0, 0, executors=pools))
    assert findings(snap, "threadpool-saturated") == []


def test_a_burst_of_quick_calls_queueing_for_a_moment_is_not_saturation() -> None:
    from tests.factories import NOW

    def borrowers(held: float) -> tuple[Borrower, ...]:
        return tuple(Borrower(task_id=i, request_id=i, since=NOW - held) for i in range(40))

    quick = snapshot(threadpool=threadpool(40, 40, 5, borrowers(0.05)))
    assert findings(quick, "threadpool-saturated") == []
    held = snapshot(threadpool=threadpool(40, 40, 5, borrowers(2.0)))
    assert [f.kind for f in findings(held, "threadpool-saturated")] == ["threadpool-saturated"]


def test_an_executor_whose_jobs_only_just_started_is_not_yet_full() -> None:
    quick = (ExecutorState("asyncio", 6, tuple(range(6)), 6, 9, default=True, longest_job=0.1),)
    assert (
        findings(snapshot(threadpool=threadpool(40, 0, 0, executors=quick)), "threadpool-saturated")
        == []
    )
    held = (ExecutorState("asyncio", 6, tuple(range(6)), 6, 9, default=True, longest_job=1.5),)
    [finding] = findings(
        snapshot(threadpool=threadpool(40, 0, 0, executors=held)), "threadpool-saturated"
    )
    assert finding.title.startswith("Default executor full")


def test_a_full_executor_names_where_tasks_wait_for_it_and_their_requests() -> None:
    from tests.factories import task

    awaiting = app(44, "quote", "price = await loop.run_in_executor(SOLVER_POOL, solve, sku)")
    to_thread = app(60, "export", "rows = await asyncio.to_thread(query)")
    waiting = tuple(
        task(500 + n, stack=(frame,), request_id=n)
        for n, frame in enumerate((awaiting, awaiting, to_thread))
    )
    requests = tuple(request(n, "GET", "/quotes/sku-1", route="/quotes/{sku}") for n in (0, 1))
    solver = tuple(
        thread(100 + i, *ANYIO_WORKER_FRAMES, SLOW, name=f"quote-solver_{i}", pool="executor")
        for i in range(4)
    )
    pools = (ExecutorState("quote-solver", 4, tuple(t.id for t in solver), 4, 3, longest_job=2),)
    snap = snapshot(
        threads=solver,
        tasks=waiting,
        requests=requests,
        threadpool=threadpool(40, 0, 0, executors=pools),
    )
    [finding] = findings(snap, "threadpool-saturated")
    assert finding.location == SLOW and finding.related == (awaiting,)
    assert finding.request == "GET /quotes/{sku}"
    assert finding.detail.endswith("Tasks wait for its jobs at app.py:44 in quote (x2).")


def test_a_limiter_of_the_apps_own_full() -> None:
    from inspector.model import LimiterState
    from tests.factories import NOW

    serving = tuple(thread(10 + i, *ANYIO_WORKER_FRAMES, SLOW, request_id=i) for i in range(4))
    other = thread(20, *ANYIO_WORKER_FRAMES, app(30, "other", "time.sleep(1)"), request_id=9)
    held = tuple(Borrower(task_id=i, request_id=i, since=NOW - 3) for i in range(4))
    own = LimiterState(total=4, borrowed=4, waiting=6, borrowers=held)
    snap = snapshot(
        threads=(*serving, other),
        requests=tuple(request(i, "GET", "/render", route="/render") for i in range(4)),
        threadpool=threadpool(40, 5, 0, limiters=(own,)),
    )
    [finding] = findings(snap, "threadpool-saturated")
    assert finding.title == "CapacityLimiter full: 4/4 tokens taken, 6 calls waiting"
    assert finding.location == SLOW and finding.related == ()
    assert finding.request == "GET /render"
    quick = LimiterState(4, 4, 6, tuple(Borrower(i, i, since=NOW - 0.1) for i in range(4)))
    assert (
        findings(
            snapshot(threadpool=threadpool(40, 0, 0, limiters=(quick,))), "threadpool-saturated"
        )
        == []
    )

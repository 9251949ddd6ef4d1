"""anyio's thread limiter, worker threads and the loop's executor, read from a live server."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from inspector.model import ThreadpoolState
from tests.apps import probes_app
from tests.probes.conftest import LiveServer, wait_for

Start = Callable[..., LiveServer]


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=20) as response:
        return int(response.status)


def test_fifty_sync_requests_hold_all_forty_tokens_and_ten_wait(live_server: Start) -> None:
    server = live_server(probes_app.app)
    probes_app.release.clear()
    with ThreadPoolExecutor(max_workers=50) as clients:
        answers = [clients.submit(_get, server.url("/sync-wait?seconds=15")) for _ in range(50)]
        try:
            state: ThreadpoolState = wait_for(
                lambda: (
                    (tp := server.collect()["threadpool"]) is not None
                    and tp.borrowed == 40
                    and tp.waiting == 10
                    and tp
                ),
                timeout=20,
            )
            # A token is borrowed on the loop before its worker thread starts the function:
            # wait until the forty workers run their requests' code.
            snapshot = wait_for(
                lambda: (
                    (collected := server.collect())
                    and sum(1 for t in collected["threads"] if t.request_id is not None) >= 40
                    and collected
                ),
                timeout=20,
            )
            waiting_requests = {r.id: r for r in snapshot["requests"] if r.path == "/sync-wait"}
            assert len(waiting_requests) == 50
            assert state.total == 40 and len(state.borrowers) == 40
            borrower_requests = {b.request_id for b in state.borrowers}
            assert borrower_requests <= set(waiting_requests) and len(borrower_requests) == 40
            assert all(b.since is not None for b in state.borrowers)
            workers = [
                t for t in snapshot["threads"] if t.pool == "anyio" and t.request_id is not None
            ]
            assert len(workers) == 40 and all(t.busy for t in workers)
            assert {t.request_id for t in workers} == borrower_requests
            served = [r for r in waiting_requests.values() if r.thread_ids]
            assert len(served) == 40
            loop_threads = [t for t in snapshot["threads"] if t.pool == "loop"]
            assert len(loop_threads) == 1 and loop_threads[0].name == "test-uvicorn"
        finally:
            probes_app.release.set()
        assert [answer.result(timeout=20) for answer in answers] == [200] * 50
    idle = wait_for(
        lambda: (tp := server.collect()["threadpool"]) is not None and tp.borrowed == 0 and tp
    )
    assert idle.waiting == 0 and idle.borrowers == ()


def test_the_default_executor_is_reported_beside_the_limiter(live_server: Start) -> None:
    import asyncio

    server = live_server(probes_app.app)

    async def use_executor() -> None:
        await asyncio.to_thread(time.sleep, 1.0)

    assert server.loop is not None
    future = asyncio.run_coroutine_threadsafe(use_executor(), server.loop)
    snapshot = wait_for(  # until the worker thread has started the job (and not yet ended it)
        lambda: (
            (s := server.collect())["threadpool"] is not None
            and s["threadpool"].executor_threads >= 1
            and any(t.pool == "executor" and t.busy for t in s["threads"])
            and s
        )
    )
    state = snapshot["threadpool"]
    assert state.executor_max_workers is not None and state.executor_max_workers >= 1
    executor_threads = [t for t in snapshot["threads"] if t.pool == "executor"]
    busy = [t for t in executor_threads if t.busy]
    assert len(busy) == 1 and busy[0].stack[-1].function.endswith("run")
    future.result(5)


def test_a_blocked_loop_still_gets_the_last_reading_quickly(live_server: Start) -> None:
    server = live_server(probes_app.app)
    httpx.get(server.url("/sync-sleep?seconds=0.01"))
    wait_for(lambda: server.collect()["threadpool"] is not None)
    assert server.loop is not None
    sleeping = threading.Event()

    def block_the_loop() -> None:
        sleeping.set()
        time.sleep(1.0)

    server.loop.call_soon_threadsafe(block_the_loop)
    assert sleeping.wait(5), "the loop never ran the blocking callback"
    started = time.monotonic()
    snapshot = server.collect()
    elapsed = time.monotonic() - started
    assert elapsed < 0.5
    assert snapshot["threadpool"] is not None and snapshot["threadpool"].total == 40
    loop_thread = next(t for t in snapshot["threads"] if t.pool == "loop")
    assert loop_thread.busy  # running a callback (the sleep), not waiting in the selector


def _fill(server: LiveServer, executor: ThreadPoolExecutor | None, jobs: int) -> threading.Event:
    """`jobs` blocking calls through run_in_executor on the server's loop; set the event to end
    them."""
    import asyncio

    release = threading.Event()

    async def submit() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(jobs):
            loop.run_in_executor(executor, release.wait, 20)

    assert server.loop is not None
    asyncio.run_coroutine_threadsafe(submit(), server.loop).result(5)
    return release


def test_an_executor_the_app_made_is_read_with_its_busy_threads_and_queue(
    live_server: Start,
) -> None:
    server = live_server(probes_app.app)
    solver = ThreadPoolExecutor(max_workers=3, thread_name_prefix="quote-solver")
    release = _fill(server, solver, jobs=5)
    try:
        snapshot = wait_for(
            lambda: (
                (s := server.collect())["threadpool"] is not None
                and any(e.name == "quote-solver" and e.busy == 3 for e in s["threadpool"].executors)
                and s
            )
        )
        [pool] = [e for e in snapshot["threadpool"].executors if e.name == "quote-solver"]
        assert (pool.max_workers, pool.queued, pool.default) == (3, 2, False)
        threads = {t.id: t for t in snapshot["threads"]}
        assert all(threads[i].pool == "executor" and threads[i].busy for i in pool.thread_ids)
        time.sleep(0.3)  # the same jobs, seen again: they have run at least this long
        [later] = [e for e in server.collect()["threadpool"].executors if e.name == pool.name]
        assert later.longest_job is not None and later.longest_job >= 0.3
    finally:
        release.set()
        solver.shutdown(wait=True)


def test_uvloops_default_executor_is_found_from_its_threads(live_server: Start) -> None:
    server = live_server(probes_app.app, loop="uvloop")
    release = _fill(server, None, jobs=40)
    try:
        snapshot = wait_for(
            lambda: (
                (s := server.collect())["threadpool"] is not None
                and any(e.default and e.queued > 0 for e in s["threadpool"].executors)
                and s
            )
        )
        state = snapshot["threadpool"]
        [pool] = [e for e in state.executors if e.default]
        assert pool.name == "uvloop" and len(pool.thread_ids) == pool.max_workers
        assert pool.busy == pool.max_workers and pool.queued == 40 - pool.max_workers
        assert state.executor_max_workers == pool.max_workers
        assert state.executor_queued == pool.queued
    finally:
        release.set()


def test_a_limiter_of_the_apps_own_is_read_with_the_requests_holding_it(
    live_server: Start,
) -> None:
    server = live_server(probes_app.app)
    probes_app.release.clear()
    with ThreadPoolExecutor(max_workers=4) as clients:
        answers = [clients.submit(_get, server.url("/own-limiter?seconds=15")) for _ in range(4)]
        try:
            state: ThreadpoolState = wait_for(
                lambda: (
                    (tp := server.collect()["threadpool"]) is not None
                    and any(lim.borrowed == 2 and lim.waiting == 2 for lim in tp.limiters)
                    and tp
                ),
                timeout=20,
            )
            [own] = state.limiters
            assert own.total == 2
            requests = {r.id for r in server.collect()["requests"] if r.path == "/own-limiter"}
            assert {b.request_id for b in own.borrowers} <= requests
            assert all(b.since is not None for b in own.borrowers)
        finally:
            probes_app.release.set()
        assert [answer.result(timeout=20) for answer in answers] == [200] * 4


def test_a_job_running_time_restarts_with_each_job(live_server: Start) -> None:
    """Quick jobs one after another on the same thread are each young, however long the queue."""
    import asyncio

    server = live_server(probes_app.app)
    serial = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serial")

    async def submit() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            loop.run_in_executor(serial, time.sleep, 0.1)

    assert server.loop is not None
    try:
        asyncio.run_coroutine_threadsafe(submit(), server.loop).result(5)
        ages = []
        for _ in range(6):
            tp = server.collect()["threadpool"]
            ages += [
                e.longest_job
                for e in tp.executors
                if e.name == "serial" and e.longest_job is not None
            ]
            time.sleep(0.15)
        assert ages and max(ages) < 0.2
    finally:
        serial.shutdown(wait=True, cancel_futures=True)

"""`pool-exhausted`: waiters for a pool with no free connection, said with who holds them."""

from __future__ import annotations

from inspector.diagnose.rules.base import Settings
from inspector.diagnose.rules.pools import pool_exhausted
from tests.factories import app, request, snapshot, task, wait

POOL = 42


def pool_wait(in_use: int, capacity: int | None, holders: tuple[int, ...] = ()) -> object:
    return wait(
        "pool",
        f"a connection from httpx's pool: {in_use} of {capacity} in use, 2 waiting",
        object_id=POOL,
        capacity=capacity,
        in_use=in_use,
        holder_task_ids=holders,
        waiters=2,
    )


def waiters(waiting: object, age: float = 3.0) -> list:
    line = app(41, "fetch_thumbnail", "response = await client.get(url)")
    return [task(10 + n, stack=(line,), waiting_on=waiting, age=age) for n in range(2)]


def test_a_full_pool_with_waiters_is_named_at_the_line_that_asks_and_says_who_holds_it() -> None:
    holder = task(
        1,
        stack=(app(50, "upload", "await client.post(url, content=data)"),),
        age=4.0,
        request_id=7,
        waiting_on=wait("stream", "reading a socket"),
    )
    queued = waiters(pool_wait(2, 2, holders=(1,)))
    shot = snapshot(tasks=(holder, *queued), requests=(request(7, path="/upload"),))
    [finding] = pool_exhausted(shot, Settings(stuck_after=1.0))
    assert finding.kind == "pool-exhausted" and finding.severity == "warning"
    assert finding.location is not None and finding.location.line == 41
    assert [frame.line for frame in finding.related] == [50]
    assert "2 of 2 in use" in finding.title
    assert "GET /upload" in finding.detail
    assert "1 connection held by no running task" in finding.detail  # 2 in use, 1 holder


def test_a_pool_with_a_free_connection_or_a_short_wait_is_no_finding() -> None:
    assert list(pool_exhausted(snapshot(tasks=tuple(waiters(pool_wait(1, 2)))), Settings())) == []
    short = waiters(pool_wait(2, 2), age=0.1)
    assert list(pool_exhausted(snapshot(tasks=tuple(short)), Settings())) == []


def test_a_home_made_pool_without_holders_says_it_cannot_tell_who_holds_them() -> None:
    home_made = wait(
        "pool",
        "a connection from ConnectionPool: 4 of 4 in use, 2 waiting",
        object_id=POOL,
        capacity=4,
        in_use=4,
        waiters=2,
    )
    [finding] = pool_exhausted(snapshot(tasks=tuple(waiters(home_made))), Settings())
    assert "ConnectionPool" in finding.title
    assert "does not record who holds" in finding.detail
    assert "async with pool.connection()" in finding.hint


def test_a_request_waiting_on_a_pool_written_in_the_app_hangs_at_the_line_that_asks() -> None:
    from inspector.diagnose.rules.requests import hanging_requests
    from tests.factories import request

    asks = app(637, "warehouse_stock", "connection = await warehouse.acquire()")
    inside = app(619, "WarehousePool.acquire", "return await self._idle.get()")
    waiting = wait(
        "pool",
        "a connection from WarehousePool: 2 of 2 in use, 3 waiting",
        object_id=POOL,
        capacity=2,
        in_use=2,
        waiters=3,
    )
    stuck = task(10, stack=(asks, inside), waiting_on=waiting, request_id=7)
    held = request(7, path="/warehouse/stock/sku-1", task_id=10, age=9.0)
    shot = snapshot(tasks=(stuck,), requests=(held,))
    [finding] = hanging_requests(shot, Settings(stuck_after=1.0))
    assert finding.location == asks
    assert "pool-exhausted" in finding.hint

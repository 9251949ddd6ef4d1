"""The demo app's endpoints do what the walkthrough says: healthy ones are quick, each buggy one
fails the way its marker claims. In-process, through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable
from types import ModuleType
from typing import Any

import anyio.to_thread
import httpx
import pytest

from inspector.demo.expected import demo_app_path

pytest.importorskip("fastapi")


def load_demo_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_app_under_test", demo_app_path())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


DEMO = load_demo_app()


@pytest.fixture
async def app() -> AsyncIterator[Any]:
    application = DEMO.create_app()
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
        yield http


def shop(app: Any) -> Any:
    return app.state.shop


async def max_loop_gap(work: Awaitable[Any]) -> tuple[float, Any]:
    """Run `work` while a ticker measures the longest time the loop went without running it."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    try:
        result = await work
    finally:
        done.set()
        await ticking
    return max(gaps), result


async def still_pending_after(seconds: float, *works: Awaitable[Any]) -> bool:
    """True when none of `works` finished within `seconds` (they are cancelled then)."""
    tasks = [asyncio.ensure_future(work) for work in works]
    finished, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return not finished


# --- healthy ---------------------------------------------------------------------------------


async def test_healthy_endpoints_answer_quickly_without_blocking_the_loop(
    client: httpx.AsyncClient, app: Any
) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    gap, response = await max_loop_gap(client.get("/items/3"))
    assert response.status_code == 200 and response.json()["id"] == 3
    assert gap < 0.1
    assert (await client.get("/items/999")).status_code == 404
    assert len((await client.get("/items?limit=5")).json()) == 5
    cart = await client.post("/cart", json={"item_id": 2, "quantity": 3})
    assert cart.status_code == 200 and cart.json()["total"] == 3 * 550
    assert "record_cart_metrics:2" in shop(app).completed_jobs


# --- the loop is blocked -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/reports/daily?seconds=0.25",
        "/reports/top-customers",
        "/recommendations/3?work=6000000",
    ],
)
async def test_blocking_endpoints_freeze_the_event_loop(
    client: httpx.AsyncClient, path: str
) -> None:
    gap, response = await max_loop_gap(client.get(path))
    assert response.status_code == 200
    assert gap >= 0.1, f"{path} left the loop free (longest gap {gap:.3f} s)"


async def test_price_in_another_currency_makes_the_loop_wait_for_itself(
    client: httpx.AsyncClient,
) -> None:
    gap, response = await max_loop_gap(client.get("/fx/3/EUR?timeout=0.3"))
    assert response.status_code == 503  # the rate arrives only after the wait gave up
    assert gap >= 0.25, f"the loop kept running (longest gap {gap:.3f} s)"
    assert (await client.get("/fx/3/XYZ")).status_code == 404


# --- waits forever -------------------------------------------------------------------------------


async def test_transfers_in_opposite_directions_deadlock(client: httpx.AsyncClient) -> None:
    assert (await client.post("/accounts/transfer?source=x&target=y")).status_code == 200
    assert await still_pending_after(
        1.0,
        client.post("/accounts/transfer?source=a&target=b"),
        client.post("/accounts/transfer?source=b&target=a"),
    )


async def test_price_publisher_and_lookups_wait_for_an_event_nobody_sets(
    client: httpx.AsyncClient, app: Any
) -> None:
    await asyncio.sleep(0.1)  # the price feed has loaded by now
    assert shop(app).prices.get("loaded") == 1
    assert await still_pending_after(0.5, client.get("/pricing/sku-1"))
    publisher = next(
        task for task in shop(app).background_tasks if task.get_coro().__name__ == "publish_prices"
    )
    assert not publisher.done()
    assert not any(job.startswith("publish_prices") for job in shop(app).completed_jobs)


async def test_failed_exports_leak_every_slot(client: httpx.AsyncClient) -> None:
    assert (await client.get("/exports/csv")).status_code == 200
    for _ in range(3):
        assert (await client.get("/exports/xlsx")).status_code == 415
    assert await still_pending_after(0.5, client.get("/exports/csv"))


async def test_producers_hang_once_the_queue_consumer_died(
    client: httpx.AsyncClient, app: Any
) -> None:
    consumer = next(
        task
        for task in shop(app).background_tasks
        if task.get_coro().__name__ == "apply_stock_updates"
    )
    assert (await client.post("/inventory/sku-1/adjust?delta=-5")).status_code == 200
    await asyncio.sleep(0.05)
    assert consumer.done() and isinstance(consumer.exception(), ValueError)
    for _ in range(3):  # the queue holds three
        assert (await client.post("/inventory/sku-2/adjust?delta=1")).status_code == 200
    assert await still_pending_after(0.5, client.post("/inventory/sku-2/adjust?delta=1"))


async def test_summary_keeps_working_after_the_client_left(app: Any) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}  # the client is already gone

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/summaries/1",
        "raw_path": b"/summaries/1",
        "query_string": b"chunks=1",
        "root_path": "",
        "headers": [(b"host", b"demo")],
        "client": ("127.0.0.1", 1),
        "server": ("demo", 80),
        "state": {},
    }
    started = time.perf_counter()
    await app(scope, receive, send)
    assert time.perf_counter() - started >= 0.45  # it did all its work for nobody
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200


# --- requests wait in line -----------------------------------------------------------------------


async def test_quotes_wait_in_line_for_one_lock_while_the_loop_is_free(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DEMO, "carrier", DEMO.CarrierClient())  # its lock is this test's
    quotes = [client.get(f"/shipping/quote?zip_code=1011{k}&seconds=0.2") for k in range(4)]
    started = time.perf_counter()
    gap, responses = await max_loop_gap(asyncio.gather(*quotes))
    elapsed = time.perf_counter() - started
    assert all(response.status_code == 200 for response in responses)
    assert elapsed >= 4 * 0.2  # one at a time, though nothing else was busy
    assert gap < 0.15  # they wait in line; nothing blocks the loop


# --- the threadpool is exhausted -----------------------------------------------------------------


async def test_slow_sync_endpoint_takes_every_threadpool_thread(client: httpx.AsyncClient) -> None:
    limiter = anyio.to_thread.current_default_thread_limiter()
    calls = [
        asyncio.ensure_future(client.get("/legacy/inventory-sync?seconds=0.4")) for _ in range(50)
    ]
    deadline = time.monotonic() + 5
    while limiter.borrowed_tokens < limiter.total_tokens and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    statistics = limiter.statistics()
    assert statistics.borrowed_tokens == statistics.total_tokens == 40
    assert statistics.tasks_waiting == 10
    responses = await asyncio.gather(*calls)
    assert all(response.status_code == 200 for response in responses)


# --- background work -----------------------------------------------------------------------------


async def test_failed_receipt_skips_the_loyalty_points(client: httpx.AsyncClient, app: Any) -> None:
    response = await client.post("/checkout", json={"user": "ann", "total_cents": 4200})
    assert response.status_code == 200
    assert not any(job.startswith("add_loyalty_points") for job in shop(app).completed_jobs)


async def test_response_background_drops_the_welcome_email(
    client: httpx.AsyncClient, app: Any
) -> None:
    assert (await client.post("/signup?email=bo@example.com")).status_code == 200
    assert "track_signup:bo@example.com" in shop(app).completed_jobs
    assert "send_welcome_email:bo@example.com" not in shop(app).completed_jobs


async def test_add_task_with_a_coroutine_never_runs_it(client: httpx.AsyncClient, app: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (await client.post("/newsletter/subscribe?email=cy@example.com")).status_code == 200
        gc.collect()
    assert not any(job.startswith("sync_to_crm") for job in shop(app).completed_jobs)
    assert any("was never awaited" in str(warning.message) for warning in caught)


async def test_slow_thumbnails_delay_the_notification(client: httpx.AsyncClient, app: Any) -> None:
    started = time.perf_counter()
    assert (await client.post("/uploads?name=p.jpg&seconds=0.3")).status_code == 200
    assert time.perf_counter() - started >= 0.3  # the transport waits for background work
    jobs = list(shop(app).completed_jobs)
    assert jobs.index("generate_thumbnails:p.jpg") < jobs.index("notify_uploader:p.jpg")


async def test_forgotten_await_loses_the_audit_entry(client: httpx.AsyncClient, app: Any) -> None:
    with pytest.warns(RuntimeWarning, match="never awaited"):
        assert (await client.delete("/orders/7")).status_code == 200
        gc.collect()
    assert list(shop(app).audit.entries) == []


async def test_fire_and_forget_refresh_fails_unseen(client: httpx.AsyncClient) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        assert (await client.post("/cache/refresh")).status_code == 200
        deadline = time.monotonic() + 2
        while not reported and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert reported and "never retrieved" in reported[0]["message"]
    assert isinstance(reported[0]["exception"], KeyError)


async def test_bad_coupon_is_swallowed(client: httpx.AsyncClient) -> None:
    assert (await client.post("/coupons/apply?code=SAVE10")).json()["total_cents"] == 9000
    bad = await client.post("/coupons/apply?code=SAVEx")
    assert bad.status_code == 200 and bad.json()["total_cents"] == 10_000


async def test_rejected_webhook_is_logged_but_answered_200(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await client.post("/webhooks/payment?signature=whsec-demo")).status_code == 200
    assert not caplog.records
    assert (await client.post("/webhooks/payment?signature=forged")).status_code == 200
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [ValueError]

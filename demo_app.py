"""A small shop API written the way real FastAPI services are, bugs included.

Run it with the inspector attached and a traffic mix that sets the bugs off:

    inspector demo                   # live terminal UI
    inspector demo --headless        # the `doctor` report after ~15 s of traffic

or on its own: `uvicorn demo_app:app` / `inspector run demo_app:app`.

Healthy endpoints (`/health`, `/items`, `/items/{item_id}`, `POST /cart`) await an async fake
database and finish in milliseconds. Every other router reproduces one failure that FastAPI users
hit in production. Each faulty line carries a `# demo: <failure>` marker comment naming the failure
the inspector should report there; `inspector/demo/expected.py` reads these markers, so the line
numbers are never written down twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sqlite3
import time
import weakref
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

logger = logging.getLogger("shop")

# --- state -----------------------------------------------------------------------------------


@dataclass
class Item:
    id: int
    name: str
    price_cents: int
    stock: int


class FakeAsyncDB:
    """Stands in for an async driver: every query awaits, so the loop keeps serving."""

    def __init__(self, items: list[Item]) -> None:
        self._items = {item.id: item for item in items}

    async def get_item(self, item_id: int) -> Item | None:
        await asyncio.sleep(0.002)
        return self._items.get(item_id)

    async def list_items(self, limit: int) -> list[Item]:
        await asyncio.sleep(0.003)
        return list(self._items.values())[:limit]


class AuditLog:
    """Append-only audit trail; `record` is a coroutine and must be awaited."""

    def __init__(self) -> None:
        self.entries: deque[tuple[str, str]] = deque(maxlen=1000)

    async def record(self, action: str, subject: str) -> None:
        await asyncio.sleep(0)
        self.entries.append((action, subject))


@dataclass
class Shop:
    """Everything the service keeps between requests (one per app, built in the lifespan)."""

    db: FakeAsyncDB
    reports_db: sqlite3.Connection
    audit: AuditLog = field(default_factory=AuditLog)
    account_locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    price_feed_ready: asyncio.Event = field(default_factory=asyncio.Event)
    prices: dict[str, int] = field(default_factory=dict)
    export_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(3))
    stock_updates: asyncio.Queue[tuple[str, int]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=3)
    )
    stock_levels: dict[str, int] = field(default_factory=dict)
    background_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    completed_jobs: deque[str] = field(default_factory=lambda: deque(maxlen=1000))
    """Background jobs that ran to the end, newest last: the tests read it."""
    balances: dict[str, int] = field(default_factory=lambda: defaultdict(lambda: 10_000))
    shipment_watchers: dict[int, weakref.ref[asyncio.Future[str]]] = field(default_factory=dict)
    supplier_syncs: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    supplier_items: dict[str, int] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    """The server's loop, for sync code in worker threads that needs the async clients."""


def get_shop(request: Request) -> Shop:
    shop: Shop = request.app.state.shop
    return shop


ShopDep = Annotated[Shop, Depends(get_shop)]


def build_reports_db() -> sqlite3.Connection:
    """An in-memory orders table big enough that an unindexed report query takes a while."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total INT)")
    connection.executemany(
        "INSERT INTO orders (customer, total) VALUES (?, ?)",
        ((f"customer-{n % 400}", (n * 37) % 9_000) for n in range(30_000)),
    )
    return connection


async def load_price_feed(shop: Shop) -> None:
    """Loads prices at startup. The waiters on `price_feed_ready` are never woken: see below."""
    await asyncio.sleep(0.05)
    shop.prices.update({"sku-1": 1_250, "sku-2": 4_990, "sku-3": 720})
    # BUG: the flag below replaced `shop.price_feed_ready.set()` in a refactor.
    shop.prices["loaded"] = 1


async def publish_prices(shop: Shop) -> None:
    """Pushes prices to the search index every minute, once the feed has loaded."""
    # Waits forever: load_price_feed never sets the Event.
    await shop.price_feed_ready.wait()  # demo: event-never-set
    while True:
        shop.completed_jobs.append(f"publish_prices:{len(shop.prices)}")
        await asyncio.sleep(60)


async def apply_stock_updates(shop: Shop) -> None:
    """The one consumer of `stock_updates`. It dies on the first bad message."""
    while True:
        sku, delta = await shop.stock_updates.get()
        if shop.stock_levels.get(sku, 0) + delta < 0:
            # BUG: raising here ends the only consumer; nothing awaits this task to notice.
            raise ValueError(f"negative stock: {sku}")  # demo: consumer-task-died
        shop.stock_levels[sku] = shop.stock_levels.get(sku, 0) + delta
        shop.stock_updates.task_done()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    items = [Item(n, f"item-{n}", 500 + 25 * n, 100) for n in range(1, 51)]
    shop = Shop(db=FakeAsyncDB(items), reports_db=build_reports_db())
    app.state.shop = shop
    # The consumer is kept in a set so it is never garbage collected, but nothing awaits it
    # or checks its result: when it dies, nobody hears about it.
    for job in (apply_stock_updates(shop), load_price_feed(shop), publish_prices(shop)):
        task = asyncio.create_task(job)
        shop.background_tasks.add(task)
    try:
        yield
    finally:
        for task in shop.background_tasks:
            task.cancel()
        shop.reports_db.close()


# --- healthy endpoints -----------------------------------------------------------------------

health_router = APIRouter(tags=["health"])


@health_router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


catalog_router = APIRouter(prefix="/items", tags=["catalog"])


@catalog_router.get("")
async def list_items(shop: ShopDep, limit: int = 10) -> list[dict[str, object]]:
    return [item.__dict__ for item in await shop.db.list_items(limit)]


@catalog_router.get("/{item_id}")
async def get_item(item_id: int, shop: ShopDep) -> dict[str, object]:
    item = await shop.db.get_item(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="no such item")
    return item.__dict__


async def watch_price(shop: Shop, item_id: int, user: str) -> None:
    last: int | None = None
    while True:
        item = await shop.db.get_item(item_id)
        if item is not None and last is not None and item.price_cents < last:
            shop.completed_jobs.append(f"price_alert:{user}:{item_id}")
        last = item.price_cents if item is not None else last
        await asyncio.sleep(5)  # demo: task-leak


@catalog_router.post("/{item_id}/price-alerts")
async def subscribe_price_alert(item_id: int, user: str, shop: ShopDep) -> dict[str, object]:
    # BUG: one watcher per subscription, kept for ever: nothing stops it when the user goes,
    # and subscribing again starts another.
    watcher = asyncio.create_task(watch_price(shop, item_id, user))  # demo: task-leak/created
    shop.background_tasks.add(watcher)
    return {"item_id": item_id, "alert": "on"}


suppliers_router = APIRouter(prefix="/suppliers", tags=["catalog"])


async def sync_supplier_catalog(shop: Shop, supplier: str) -> None:
    """Pulls a supplier's catalog every few seconds, retrying whatever goes wrong."""
    while True:
        try:
            shop.supplier_items[supplier] = len(await shop.db.list_items(5))
            await asyncio.sleep(2)  # demo: cancellation-swallowed
        except:  # noqa: E722  BUG: a bare except takes the task's cancellation too
            await asyncio.sleep(2)  # demo: cancellation-swallowed/retry


@suppliers_router.post("/{supplier}/resync")
async def resync_supplier(supplier: str, shop: ShopDep) -> dict[str, object]:
    running = shop.supplier_syncs.get(supplier)
    if running is not None:
        running.cancel()  # believed stopped; it goes on, beside the new one
    sync = asyncio.create_task(sync_supplier_catalog(shop, supplier))
    shop.supplier_syncs[supplier] = sync
    return {"supplier": supplier, "sync": "restarted"}


class CartLine(BaseModel):
    item_id: int
    quantity: int = 1


cart_router = APIRouter(prefix="/cart", tags=["cart"])


async def record_cart_metrics(shop: Shop, item_id: int) -> None:
    await asyncio.sleep(0.01)
    shop.completed_jobs.append(f"record_cart_metrics:{item_id}")


@cart_router.post("")
async def add_to_cart(
    line: CartLine, background: BackgroundTasks, shop: ShopDep
) -> dict[str, object]:
    item = await shop.db.get_item(line.item_id)
    if item is None:
        raise HTTPException(status_code=404, detail="no such item")
    background.add_task(record_cart_metrics, shop, line.item_id)
    total = item.price_cents * line.quantity
    return {"item_id": item.id, "quantity": line.quantity, "total": total}


# --- the event loop is blocked -----------------------------------------------------------------

reports_router = APIRouter(prefix="/reports", tags=["reports"])


@reports_router.get("/daily")
async def daily_report(seconds: float = 0.6) -> dict[str, object]:
    # BUG: a retry backoff written with time.sleep in async def freezes every request.
    time.sleep(seconds)  # demo: blocking-sleep
    return {"report": "daily", "waited": seconds}


@reports_router.get("/top-customers")
async def top_customers(shop: ShopDep, limit: int = 5) -> dict[str, object]:
    # BUG: a synchronous sqlite3 query inside async def: the loop waits for the database.
    rows = shop.reports_db.execute(  # demo: sync-database-call
        "SELECT a.customer, count(*) FROM orders a JOIN orders b ON a.customer = b.customer "
        "GROUP BY a.customer ORDER BY 2 DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return {"top": rows}


recommendations_router = APIRouter(prefix="/recommendations", tags=["recommendations"])


@recommendations_router.get("/{user_id}")
async def recommendations(user_id: int, work: int = 8_000_000) -> dict[str, object]:
    # BUG: CPU-bound scoring in async def: no await, so nothing else runs until it is done.
    score = sum((i * user_id) % 7 for i in range(work))  # demo: cpu-bound-work
    return {"user_id": user_id, "score": score}


fx_router = APIRouter(prefix="/fx", tags=["fx"])
EXCHANGE_RATES = {"EUR": 0.92, "GBP": 0.79, "JPY": 151.3}


async def fetch_exchange_rate(currency: str) -> float:
    """The async client of the exchange-rate service."""
    await asyncio.sleep(0.01)
    return EXCHANGE_RATES[currency]


def price_sheet_row(shop: Shop, item: Item, currency: str, timeout: float) -> dict[str, object]:
    """One row of the nightly price sheet. The nightly job runs in a worker thread, so this
    sync helper hands the rate lookup to the server's loop and waits for the answer."""
    coro, loop = fetch_exchange_rate(currency), shop.loop
    rate = asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)  # demo: sync-async-deadlock
    return {"item_id": item.id, "currency": currency, "price": round(item.price_cents * rate) / 100}


@fx_router.get("/{item_id}/{currency}")
async def price_in_currency(
    item_id: int, currency: str, shop: ShopDep, timeout: float = 2.0
) -> dict[str, object]:
    item = await shop.db.get_item(item_id)
    if item is None or currency not in EXCHANGE_RATES:
        raise HTTPException(status_code=404, detail="no such item or currency")
    try:
        # BUG: the helper is meant for worker threads. Called here, on the loop thread, it makes
        # the loop wait for a coroutine that only the loop can run: frozen until the timeout.
        return price_sheet_row(shop, item, currency, timeout)
    except concurrent.futures.TimeoutError:
        raise HTTPException(status_code=503, detail="exchange rates unavailable") from None


# --- tasks that wait forever -------------------------------------------------------------------

accounts_router = APIRouter(prefix="/accounts", tags=["accounts"])


@accounts_router.post("/transfer")
async def transfer(source: str, target: str, shop: ShopDep, amount: int = 100) -> dict[str, object]:
    # BUG: locks are taken in argument order, so a->b and b->a at the same time deadlock.
    async with shop.account_locks[source]:
        await asyncio.sleep(0.3)  # fetch both balances from the ledger service
        async with shop.account_locks[target]:  # demo: lock-order-deadlock
            shop.balances[source] -= amount
            shop.balances[target] += amount
    return {"source": source, "target": target, "amount": amount}


pricing_router = APIRouter(prefix="/pricing", tags=["pricing"])


@pricing_router.get("/{sku}")
async def price(sku: str, shop: ShopDep) -> dict[str, object]:
    # BUG: waits for an Event that load_price_feed never sets.
    await shop.price_feed_ready.wait()  # demo: price-lookup-hangs
    return {"sku": sku, "price_cents": shop.prices.get(sku)}


exports_router = APIRouter(prefix="/exports", tags=["exports"])
SUPPORTED_EXPORTS = ("csv", "json")


@exports_router.get("/{fmt}")
async def export(fmt: str, shop: ShopDep) -> dict[str, object]:
    # Waits forever once the error path below has leaked every slot.
    await shop.export_slots.acquire()  # demo: semaphore-leak
    if fmt not in SUPPORTED_EXPORTS:
        # BUG: this error path returns without export_slots.release(): the slot leaks.
        raise HTTPException(status_code=415, detail=f"cannot export {fmt}")
    await asyncio.sleep(0.05)  # render the export
    shop.export_slots.release()
    return {"format": fmt, "rows": 40}


inventory_router = APIRouter(prefix="/inventory", tags=["inventory"])


@inventory_router.post("/{sku}/adjust")
async def adjust_stock(sku: str, delta: int, shop: ShopDep) -> dict[str, object]:
    # The consumer (apply_stock_updates) died on a bad message; the queue fills up and
    # every producer after that waits here forever.
    await shop.stock_updates.put((sku, delta))  # demo: queue-consumer-died
    return {"sku": sku, "queued": delta}


summaries_router = APIRouter(prefix="/summaries", tags=["summaries"])


@summaries_router.get("/{doc_id}")
async def summarize(doc_id: int, chunks: int = 40) -> dict[str, object]:
    # BUG: slow work that never checks `await request.is_disconnected()`: when the client
    # gives up, the handler keeps going until the end.
    parts = []
    for chunk in range(chunks):
        await asyncio.sleep(0.5)  # demo: client-left
        parts.append(f"part {chunk}")
    return {"doc_id": doc_id, "summary": " ".join(parts)}


# --- requests that wait in line ----------------------------------------------------------------

shipping_router = APIRouter(prefix="/shipping", tags=["shipping"])


class CarrierClient:
    """The shipping carrier's API: one client per process, shared by every request."""

    def __init__(self) -> None:
        # The lock is there so that concurrent requests do not all refresh the token at once.
        self._lock = asyncio.Lock()
        self._token: str | None = None

    async def _refresh_token(self) -> str:
        await asyncio.sleep(0.05)
        return "carrier-token-1"

    async def quote(self, zip_code: str, seconds: float) -> int:
        async with self._lock:
            if self._token is None:
                self._token = await self._refresh_token()
            # BUG: the rate call sits inside the lock too, so quotes are fetched one at a time:
            # each request waits for every request before it, and latency grows with traffic.
            await asyncio.sleep(seconds)  # ask the carrier for rates  # demo: lock-contention
        return 490


carrier = CarrierClient()


@shipping_router.get("/quote")
async def shipping_quote(zip_code: str, seconds: float = 0.5) -> dict[str, object]:
    return {"zip_code": zip_code, "cents": await carrier.quote(zip_code, seconds)}


# --- the threadpool is exhausted ---------------------------------------------------------------

legacy_router = APIRouter(prefix="/legacy", tags=["legacy"])


@legacy_router.get("/inventory-sync")
def inventory_sync(seconds: float = 5.0) -> dict[str, object]:
    # A sync endpoint runs in anyio's threadpool (40 threads). 50 slow calls at once take all
    # of them; every other sync endpoint, dependency and run_in_threadpool call queues.
    time.sleep(seconds)  # demo: threadpool-exhausted
    return {"synced": True}


# --- background work that fails or never runs --------------------------------------------------

orders_router = APIRouter(tags=["orders"])


class Checkout(BaseModel):
    user: str
    total_cents: int


async def send_receipt_email(shop: Shop, user: str) -> None:
    await asyncio.sleep(0.01)
    raise ConnectionError(f"SMTP refused the receipt for {user}")  # demo: background-task-failed


async def add_loyalty_points(shop: Shop, user: str, points: int) -> None:
    shop.completed_jobs.append(f"add_loyalty_points:{user}:{points}")


@orders_router.post("/checkout")
async def checkout(
    order: Checkout, background: BackgroundTasks, shop: ShopDep
) -> dict[str, object]:
    user, points = order.user, order.total_cents // 100
    background.add_task(send_receipt_email, shop, user)  # demo: background-task-failed/queued
    # BUG: Starlette runs background tasks in order and stops at the first failure, so the
    # points are never added when the receipt fails.
    background.add_task(add_loyalty_points, shop, user, points)  # demo: background-task-skipped
    return {"status": "paid", "user": user}


@orders_router.delete("/orders/{order_id}")
async def cancel_order(order_id: int, shop: ShopDep) -> dict[str, object]:
    # BUG: missing `await`: the coroutine is created and thrown away.
    shop.audit.record("order-cancelled", str(order_id))  # demo: forgotten-await
    return {"order_id": order_id, "status": "cancelled"}


async def notify_when_shipped(shop: Shop, order_id: int) -> None:  # demo: task-collected
    shipped: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    # BUG: the watch list holds the future weakly and nobody holds the task, so the garbage
    # collector takes both while the task waits: the customer is never told.
    shop.shipment_watchers[order_id] = weakref.ref(shipped)
    carrier = await shipped
    shop.completed_jobs.append(f"notify_when_shipped:{order_id}:{carrier}")


@orders_router.post("/orders/{order_id}/track")
async def track_order(order_id: int, shop: ShopDep) -> dict[str, object]:
    asyncio.create_task(notify_when_shipped(shop, order_id))  # demo: task-collected/created
    return {"order_id": order_id, "tracking": True}


users_router = APIRouter(prefix="/signup", tags=["users"])


async def send_welcome_email(shop: Shop, email: str) -> None:
    shop.completed_jobs.append(f"send_welcome_email:{email}")


async def track_signup(shop: Shop, email: str) -> None:
    shop.completed_jobs.append(f"track_signup:{email}")


@users_router.post("")
async def signup(email: str, background: BackgroundTasks, shop: ShopDep) -> JSONResponse:
    background.add_task(send_welcome_email, shop, email)  # demo: background-tasks-dropped
    # FastAPI only attaches the injected BackgroundTasks when the response has no background
    # of its own: this one wins and the welcome email is silently dropped.
    return JSONResponse(
        {"email": email, "status": "registered"},
        background=BackgroundTask(track_signup, shop, email),
    )


newsletter_router = APIRouter(prefix="/newsletter", tags=["newsletter"])


async def sync_to_crm(shop: Shop, email: str) -> None:
    shop.completed_jobs.append(f"sync_to_crm:{email}")


@newsletter_router.post("/subscribe")
async def subscribe(email: str, background: BackgroundTasks, shop: ShopDep) -> dict[str, object]:
    # BUG: add_task wants the function and its arguments, not a coroutine object.
    background.add_task(sync_to_crm(shop, email))  # demo: add-task-coroutine
    return {"email": email, "subscribed": True}


uploads_router = APIRouter(prefix="/uploads", tags=["uploads"])


async def generate_thumbnails(shop: Shop, name: str, seconds: float) -> None:
    for _size in range(20):
        # Slow job: every job queued after it in the same request waits.
        await asyncio.sleep(seconds / 20)  # demo: slow-background-task
    shop.completed_jobs.append(f"generate_thumbnails:{name}")


async def notify_uploader(shop: Shop, name: str) -> None:
    shop.completed_jobs.append(f"notify_uploader:{name}")


@uploads_router.post("")
async def upload(
    name: str, background: BackgroundTasks, shop: ShopDep, seconds: float = 20.0
) -> dict[str, object]:
    background.add_task(generate_thumbnails, shop, name, seconds)
    background.add_task(notify_uploader, shop, name)  # demo: slow-background-task/delayed
    return {"name": name, "status": "processing"}


cache_router = APIRouter(prefix="/cache", tags=["cache"])


async def refresh_cache(shop: Shop) -> None:
    await asyncio.sleep(0.01)
    raise KeyError("catalog-v2")  # demo: fire-and-forget-failed


@cache_router.post("/refresh")
async def refresh(shop: ShopDep) -> dict[str, object]:
    # BUG: fire and forget: nobody keeps the task or looks at its result.
    asyncio.create_task(refresh_cache(shop))  # demo: fire-and-forget-failed/created
    return {"refresh": "started"}


# --- exceptions nobody sees ---------------------------------------------------------------------

coupons_router = APIRouter(prefix="/coupons", tags=["coupons"])


@coupons_router.post("/apply")
async def apply_coupon(code: str, total_cents: int = 10_000) -> dict[str, object]:
    discount_pct = 0
    try:
        discount_pct = int(code.removeprefix("SAVE"))  # demo: swallowed-exception/raised
    except Exception:  # demo: swallowed-exception
        pass  # BUG: the error is dropped without a trace
    return {"code": code, "total_cents": total_cents * (100 - discount_pct) // 100}


webhooks_router = APIRouter(prefix="/webhooks", tags=["webhooks"])
WEBHOOK_SECRET = "whsec-demo"


def verify_signature(signature: str) -> None:
    if signature != WEBHOOK_SECRET:
        raise ValueError("payment webhook signature mismatch")  # demo: webhook-error-logged


@webhooks_router.post("/payment")
async def payment_webhook(signature: str = "") -> dict[str, object]:
    try:
        verify_signature(signature)
    except ValueError:
        # BUG: logged, then answered 200 anyway: the provider never retries, the payment
        # event is lost, and the only trace is one traceback in a busy log.
        logger.exception("payment webhook rejected")  # demo: webhook-error-logged/logged
    return {"received": True}


# --- a connection pool that leaks on an error path ---------------------------------------------

warehouse_router = APIRouter(prefix="/warehouse", tags=["warehouse"])


class WarehousePool:
    """Connections to the warehouse system: a fixed number, lent out one per query."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: asyncio.Queue[int] = asyncio.Queue()
        for connection in range(size):
            self._idle.put_nowait(connection)

    async def acquire(self) -> int:
        return await self._idle.get()

    def release(self, connection: int) -> None:
        self._idle.put_nowait(connection)


warehouse = WarehousePool(size=2)


async def query_stock(connection: int, sku: str) -> int:
    await asyncio.sleep(0.02)
    if sku.startswith("retired-"):
        raise HTTPException(status_code=404, detail=f"{sku} is no longer stocked")
    return 12


@warehouse_router.get("/stock/{sku}")
async def warehouse_stock(sku: str) -> dict[str, object]:
    connection = await warehouse.acquire()  # demo: pool-exhausted
    # BUG: a 404 from the query skips release(): each retired SKU leaks a connection, and once
    # both are gone every stock lookup waits for a connection that never comes back.
    level = await query_stock(connection, sku)
    warehouse.release(connection)
    return {"sku": sku, "level": level}


# --- short bursts of CPU that add up ------------------------------------------------------------

search_router = APIRouter(prefix="/search", tags=["search"])
SEARCH_INDEX = [f"product {n} {'blue' if n % 3 else 'red'} size {n % 9}" for n in range(40_000)]


@search_router.get("")
async def search(q: str) -> dict[str, object]:
    # BUG: a linear scan in Python on the loop: 5 ms a query is nothing alone, but under a rush
    # the loop does nothing else and every other request waits behind the searches.
    hits = [t for t in SEARCH_INDEX if q in t and t.count(" ") > 2]  # demo: loop-saturated
    return {"q": q, "hits": len(hits)}


# --- the app -----------------------------------------------------------------------------------

ROUTERS = (
    health_router,
    catalog_router,
    cart_router,
    reports_router,
    recommendations_router,
    fx_router,
    accounts_router,
    pricing_router,
    exports_router,
    inventory_router,
    summaries_router,
    shipping_router,
    legacy_router,
    orders_router,
    users_router,
    newsletter_router,
    uploads_router,
    cache_router,
    suppliers_router,
    coupons_router,
    webhooks_router,
    warehouse_router,
    search_router,
)


def create_app() -> FastAPI:
    app = FastAPI(title="shop (inspector demo)", lifespan=lifespan)
    for router in ROUTERS:
        app.include_router(router)
    return app


app = create_app()

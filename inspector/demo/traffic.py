"""Traffic for the demo server: steady healthy requests, and each bug set off on a schedule.

The client is a few lines over asyncio streams (no third-party HTTP client needed): one
connection per request, `Connection: close`, and a timeout after which the client hangs up,
which is exactly what a browser or a proxy does to a slow endpoint. Requests that hang are
abandoned that way, so the demo never piles up connections of its own.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

HEALTHY_INTERVAL: Final = 0.15
"""Seconds between two healthy requests (about 7 per second)."""
THREADPOOL_BURST: Final = 50
"""Concurrent calls to the slow sync endpoint: more than anyio's 40 threads."""
QUOTE_SHOPPERS: Final = 6
"""Shoppers asking for shipping quotes at once, each asking again as soon as it is answered:
one holds the carrier lock, the others queue for it."""
SEARCH_SHOPPERS: Final = 4
SEARCH_ROUNDS: Final = 120
"""Searches each shopper sends, one after another (about 5 ms of the loop's time each)."""
QUOTE_ROUNDS: Final = 10
"""Quotes each shopper asks for (about 3 s apiece while they queue: a rush of about 30 s)."""


@dataclass
class TrafficStats:
    """What the driver sent and what came back, for progress lines and tests."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    abandoned: int = 0
    """Requests the client gave up on (timed out, then hung up)."""
    failed: int = 0
    """Requests that could not be sent (connection refused or reset)."""

    def summary(self) -> str:
        total = sum(self.sent.values())
        answered = sum(self.statuses.values())
        ok = sum(n for status, n in self.statuses.items() if status < 400)
        in_flight = total - answered - self.abandoned - self.failed
        return (
            f"{total} requests: {ok} ok, {answered - ok} errors, {self.abandoned} abandoned "
            f"by the client, {in_flight} still in flight, {self.failed} failed to connect"
        )


class DemoClient:
    """Sends one request per connection to the demo server and records the outcome."""

    def __init__(self, host: str, port: int, stats: TrafficStats | None = None) -> None:
        self.host = host
        self.port = port
        self.stats = stats if stats is not None else TrafficStats()
        self._pending: set[asyncio.Task[object]] = set()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: object | None = None,
        timeout: float = 10.0,
    ) -> int | None:
        """The response status, or None when the client gave up or could not connect."""
        self.stats.sent[f"{method} {path.split('?')[0]}"] += 1
        try:
            status_line = await asyncio.wait_for(self._exchange(method, path, body), timeout)
        except asyncio.TimeoutError:
            self.stats.abandoned += 1
            return None
        except OSError:
            self.stats.failed += 1
            return None
        try:
            status = int(status_line.split()[1])
        except (IndexError, ValueError):
            self.stats.failed += 1
            return None
        self.stats.statuses[status] += 1
        return status

    async def _exchange(self, method: str, path: str, body: object | None) -> bytes:
        """Send the request, read the whole response; hang up on the way out, even if cancelled."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"User-Agent: inspector-demo\r\nConnection: close\r\n"
            f"Content-Length: {len(payload)}\r\n"
        )
        if body is not None:
            head += "Content-Type: application/json\r\n"
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(head.encode() + b"\r\n" + payload)
            await writer.drain()
            status_line = await reader.readline()
            await reader.read()  # the rest of the response, until the server closes
            return status_line
        finally:
            writer.close()

    def fire(
        self, method: str, path: str, *, body: object | None = None, timeout: float = 10.0
    ) -> None:
        """Send a request without waiting for it (kept referenced until it ends)."""
        self.spawn(self.request(method, path, body=body, timeout=timeout))

    def spawn(self, work: Coroutine[Any, Any, object]) -> None:
        """Run `work` in the background until it ends or the client closes."""
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        """Hang up every request still in flight."""
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


# --- the failures ----------------------------------------------------------------------------

Action = Callable[[DemoClient, int], Coroutine[Any, Any, None]]
"""Sets one failure off; gets the client and how many times it fired before. It returns once
its requests are sent (it may wait for some of them, to order them), or hands a longer run of
them to `client.spawn`."""


async def block_with_sleep(client: DemoClient, n: int) -> None:
    client.fire("GET", "/reports/daily?seconds=0.6")


async def block_with_sqlite(client: DemoClient, n: int) -> None:
    client.fire("GET", "/reports/top-customers")


async def block_with_cpu(client: DemoClient, n: int) -> None:
    client.fire("GET", f"/recommendations/{n + 7}?work=12000000")


async def wait_on_own_loop(client: DemoClient, n: int) -> None:
    client.fire("GET", f"/fx/{n % 50 + 1}/EUR")


async def ask_for_quotes(client: DemoClient, zip_code: str) -> None:
    for _ in range(QUOTE_ROUNDS):
        await client.request("GET", f"/shipping/quote?zip_code={zip_code}", timeout=15)


async def queue_for_quotes(client: DemoClient, n: int) -> None:
    # Each shopper waits for its quote before the next: the line stays QUOTE_SHOPPERS long,
    # and no request waits long enough to count as hanging.
    for shopper in range(QUOTE_SHOPPERS):
        client.spawn(ask_for_quotes(client, f"{10115 + 100 * shopper}"))


async def deadlock_transfers(client: DemoClient, n: int) -> None:
    first, second = f"acct-{2 * n}", f"acct-{2 * n + 1}"
    client.fire("POST", f"/accounts/transfer?source={first}&target={second}", timeout=3)
    client.fire("POST", f"/accounts/transfer?source={second}&target={first}", timeout=3)


async def wait_for_prices(client: DemoClient, n: int) -> None:
    client.fire("GET", f"/pricing/sku-{n % 3 + 1}", timeout=3)


async def leak_export_slots(client: DemoClient, n: int) -> None:
    if n == 0:
        for _ in range(3):
            await client.request("GET", "/exports/xlsx")  # each 415 leaks a slot
    client.fire("GET", "/exports/csv", timeout=3)


async def kill_stock_consumer(client: DemoClient, n: int) -> None:
    if n == 0:
        await client.request("POST", "/inventory/sku-1/adjust?delta=-5")  # kills the consumer
        await asyncio.sleep(0.2)
    # Three fill the queue nobody reads any more; the rest wait forever.
    for k in range(6 if n == 0 else 1):
        client.fire("POST", f"/inventory/sku-{k % 3 + 1}/adjust?delta=2", timeout=3)


async def abandon_summary(client: DemoClient, n: int) -> None:
    client.fire("GET", f"/summaries/{n + 1}", timeout=1)


async def fail_background_jobs(client: DemoClient, n: int) -> None:
    client.fire("POST", "/checkout", body={"user": f"user-{n}", "total_cents": 4_200})


async def drop_background_jobs(client: DemoClient, n: int) -> None:
    client.fire("POST", f"/signup?email=new-{n}@example.com")


async def enqueue_coroutine(client: DemoClient, n: int) -> None:
    client.fire("POST", f"/newsletter/subscribe?email=reader-{n}@example.com")


async def slow_background_job(client: DemoClient, n: int) -> None:
    client.fire("POST", f"/uploads?name=photo-{n}.jpg&seconds=20")


async def forget_await(client: DemoClient, n: int) -> None:
    client.fire("DELETE", f"/orders/{1000 + n}")


async def fire_and_forget(client: DemoClient, n: int) -> None:
    client.fire("POST", "/cache/refresh")


ALERT_SUBSCRIBERS: Final = 24
"""Price alerts subscribed at a time: each leaves a watcher task behind for ever."""


async def subscribe_alerts(client: DemoClient, n: int) -> None:
    for user in range(ALERT_SUBSCRIBERS):
        subscriber = ALERT_SUBSCRIBERS * n + user
        client.fire("POST", f"/items/{1 + user % 3}/price-alerts?user=u{subscriber}")


async def resync_supplier(client: DemoClient, n: int) -> None:
    # The first request starts a sync, the second (once the sync has surely begun: a task
    # cancelled before its first step never reaches the bare except) cancels and replaces it.
    await client.request("POST", "/suppliers/acme/resync")
    await asyncio.sleep(0.5)
    client.fire("POST", "/suppliers/acme/resync")


async def track_orders(client: DemoClient, n: int) -> None:
    for order in range(3):
        client.fire("POST", f"/orders/{2000 + 3 * n + order}/track")


async def swallow_exception(client: DemoClient, n: int) -> None:
    client.fire("POST", f"/coupons/apply?code=SAVE{'x' if n % 2 == 0 else 10}")


async def log_an_error(client: DemoClient, n: int) -> None:
    client.fire("POST", "/webhooks/payment?signature=forged")


async def leak_warehouse_connections(client: DemoClient, n: int) -> None:
    if n == 0:
        for sku in ("retired-1", "retired-2"):
            await client.request("GET", f"/warehouse/stock/{sku}")  # each 404 leaks one
    for k in range(3 if n == 0 else 1):
        client.fire("GET", f"/warehouse/stock/sku-{k + 1}", timeout=3)


async def search_rush(client: DemoClient, n: int) -> None:
    """Shoppers searching back to back: each query is short, together they fill the loop."""

    async def shopper(term: str) -> None:
        for _ in range(SEARCH_ROUNDS):
            await client.request("GET", f"/search?q={term}", timeout=5)

    for term in ("blue", "red", "size 3", "product 1")[:SEARCH_SHOPPERS]:
        client.spawn(shopper(term))


async def exhaust_threadpool(client: DemoClient, n: int) -> None:
    for _ in range(THREADPOOL_BURST):
        client.fire("GET", "/legacy/inventory-sync?seconds=5", timeout=15)


@dataclass(frozen=True)
class Trigger:
    """One failure: first set off `first_at` seconds in, then every `every` seconds (if set)."""

    name: str
    first_at: float
    every: float | None
    action: Action


SCHEDULE: Final[tuple[Trigger, ...]] = (
    Trigger("forgotten await", 0.8, 10.0, forget_await),
    Trigger("fire-and-forget task", 1.0, 15.0, fire_and_forget),
    Trigger("failing background job", 1.2, 9.0, fail_background_jobs),
    Trigger("dropped background job", 1.4, 11.0, drop_background_jobs),
    Trigger("add_task(coroutine)", 1.6, 13.0, enqueue_coroutine),
    Trigger("collected tracking task", 1.7, 14.0, track_orders),
    Trigger("price watchers never stopped", 1.3, 30.0, subscribe_alerts),
    Trigger("supplier sync restarted", 2.1, 60.0, resync_supplier),
    Trigger("swallowed exception", 1.8, 7.0, swallow_exception),
    Trigger("error logged, 200 sent", 1.9, 16.0, log_an_error),
    Trigger("blocking sleep", 2.0, 12.0, block_with_sleep),
    Trigger("deadlock", 2.5, 60.0, deadlock_transfers),
    Trigger("event never set", 2.8, 30.0, wait_for_prices),
    Trigger("semaphore leak", 3.1, 40.0, leak_export_slots),
    Trigger("dead queue consumer", 3.4, 20.0, kill_stock_consumer),
    Trigger("client gave up", 3.7, 20.0, abandon_summary),
    Trigger("slow background job", 4.0, 25.0, slow_background_job),
    Trigger("CPU-bound work", 4.5, 17.0, block_with_cpu),
    Trigger("sync database call", 5.0, 19.0, block_with_sqlite),
    Trigger("lock held across a slow call", 5.5, 45.0, queue_for_quotes),
    Trigger("loop waits for itself", 6.5, 23.0, wait_on_own_loop),
    Trigger("threadpool exhaustion", 8.0, 45.0, exhaust_threadpool),
    Trigger("leaked pool connections", 3.3, 40.0, leak_warehouse_connections),
    Trigger("search rush", 9.5, 40.0, search_rush),
)
"""Staggered so the screen evolves: a new failure every few tenths of a second at first,
then each one again at its own pace."""

FINALE: Final = Trigger("threadpool exhaustion", 0.0, None, exhaust_threadpool)
"""Headless runs end inside a threadpool burst so the snapshot shows it saturated."""
FINALE_LEAD: Final = 3.0
"""Seconds between the finale and the end of a headless run (the burst lasts 5 s)."""


async def healthy_traffic(client: DemoClient, stop: asyncio.Event, rng: random.Random) -> None:
    """A steady trickle of requests to the healthy endpoints, until `stop` is set."""
    while not stop.is_set():
        choice = rng.random()
        if choice < 0.3:
            client.fire("GET", "/health")
        elif choice < 0.6:
            client.fire("GET", f"/items/{rng.randint(1, 50)}")
        elif choice < 0.8:
            client.fire("GET", "/items?limit=5")
        else:
            client.fire("POST", "/cart", body={"item_id": rng.randint(1, 50), "quantity": 2})
        try:
            await asyncio.wait_for(stop.wait(), HEALTHY_INTERVAL)
        except asyncio.TimeoutError:
            pass


async def drive(
    client: DemoClient,
    stop: asyncio.Event,
    *,
    duration: float | None = None,
    schedule: tuple[Trigger, ...] = SCHEDULE,
    on_trigger: Callable[[Trigger], None] | None = None,
    seed: int = 7,
) -> None:
    """Run the traffic mix until `stop` is set or `duration` seconds have passed.

    With a duration (headless), each failure fires on its first date only and the run ends
    with a threadpool burst `FINALE_LEAD` seconds before the end; without one, every failure
    repeats at its own interval.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    healthy = asyncio.create_task(healthy_traffic(client, stop, random.Random(seed)))
    plan: list[tuple[float, int, Trigger]] = [(t.first_at, i, t) for i, t in enumerate(schedule)]
    if duration is not None:
        # One threadpool burst, timed to be in full swing at the end.
        plan = [entry for entry in plan if entry[2].action is not FINALE.action]
        last = max((entry[0] for entry in plan), default=0.0)
        plan.append((max(duration - FINALE_LEAD, last), len(schedule), FINALE))
    fired: Counter[str] = Counter()
    try:
        while not stop.is_set():
            now = loop.time() - started
            if duration is not None and now >= duration:
                break
            plan.sort(key=lambda entry: (entry[0], entry[1]))
            next_at = min(
                plan[0][0] if plan else now + 3600,
                duration if duration is not None else math.inf,
            )
            if next_at > now:
                try:
                    await asyncio.wait_for(stop.wait(), next_at - now)
                except asyncio.TimeoutError:
                    pass
                continue
            due_at, index, trigger = plan.pop(0)
            client.spawn(trigger.action(client, fired[trigger.name]))
            fired[trigger.name] += 1
            if on_trigger is not None:
                on_trigger(trigger)
            if duration is None and trigger.every is not None:
                plan.append((due_at + trigger.every, index, trigger))
    finally:
        stop.set()
        await healthy

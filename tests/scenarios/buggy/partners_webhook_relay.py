"""Partner relay: webhooks from the shop are compressed and forwarded to partner endpoints.

Faults: the relay forwards with `urllib.request` (a blocking HTTP call) from an `async def`
endpoint, so the event loop waits for the partner's slow answer; the batch endpoint compresses
the whole batch with lzma on the event loop.
"""

from __future__ import annotations

import http.server
import lzma
import threading
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(
        get("/relay/status"),
        post("/relay/orders", '{"order": "o-77"}', after=0.3),
        post("/relay/batch", after=1.5),
    ),
    loop="uvloop",
)


class SlowPartner(http.server.BaseHTTPRequestHandler):
    """Stands in for a partner endpoint that takes its time to acknowledge."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(0.8)
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:  # type: ignore[override]
        pass


partner = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowPartner)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    threading.Thread(target=partner.serve_forever, name="partner", daemon=True).start()
    yield
    partner.shutdown()


app = FastAPI(lifespan=lifespan)
forwarded: list[str] = []


def forward(body: bytes) -> int:
    url = f"http://127.0.0.1:{partner.server_address[1]}/hooks/orders"
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5) as reply:  # bug: loop-blocked
        return reply.status


@app.get("/relay/status")
async def status() -> dict[str, int]:
    return {"forwarded": len(forwarded)}


@app.post("/relay/orders")
async def relay_order(order: dict[str, str]) -> dict[str, int]:
    forwarded.append(order["order"])
    return {"partner_status": forward(repr(order).encode())}


@app.post("/relay/batch")
async def relay_batch() -> dict[str, int]:
    batch = b"".join(f"order-{n},shipped,{n * 7 % 1000}\n".encode() for n in range(30000))
    packed = lzma.compress(batch, preset=6)  # bug: loop-blocked
    return {"bytes": len(packed)}

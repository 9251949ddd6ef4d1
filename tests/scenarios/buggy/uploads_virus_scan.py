"""Upload service: a sync endpoint stores the file, and a scan is meant to start afterwards.

Faults: the sync endpoint calls the async scanner without awaiting it (it runs in a worker thread,
where nobody could await it anyway), so no upload is ever scanned; the scanner's own warm-up at
startup forgets an await too.
"""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(calls=(post("/uploads/report.pdf", times=2),), loop="uvloop")


class VirusScanner:
    def __init__(self) -> None:
        self.scanned: set[str] = set()
        self.signatures = 0

    async def scan(self, digest: str) -> None:
        await asyncio.sleep(0.01)
        self.scanned.add(digest)

    async def load_signatures(self) -> None:
        await asyncio.sleep(0.01)
        self.signatures = 4096


scanner = VirusScanner()
app = FastAPI()


@app.on_event("startup")
async def warm_up() -> None:
    scanner.load_signatures()  # bug: coroutine-never-awaited


def store(name: str, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    scanner.scan(digest)  # bug: coroutine-never-awaited
    return digest


@app.post("/uploads/{name}")
def upload(name: str) -> dict[str, str]:
    return {"digest": store(name, name.encode() * 100)}

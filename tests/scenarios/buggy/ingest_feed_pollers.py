"""Feed ingestion service: lifespan workers poll partner feeds and compact the index.

Faults: the index compactor, started in the lifespan and kept in app.state, dies on its first
line (its setting is missing) and nobody awaits it until shutdown; a manual refresh starts a
fire-and-forget task that fails on a malformed feed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(calls=(get("/feeds"), post("/feeds/partner-b/refresh", after=0.3)))

FEEDS = {"partner-a": "id,title\n1,shoes\n", "partner-b": "id;title\n2;boots\n"}
index: dict[str, list[str]] = {}


async def compact_index() -> None:
    threshold = int(os.environ["INGEST_COMPACTION_THRESHOLD"])  # bug: task-exception-unretrieved
    while True:
        await asyncio.sleep(1)
        for feed, rows in index.items():
            index[feed] = rows[-threshold:]


async def poll_feed(feed: str) -> None:
    while True:
        index[feed] = parse_rows(FEEDS[feed])
        await asyncio.sleep(0.5)


def parse_rows(body: str) -> list[str]:
    header, *rows = body.strip().splitlines()
    if "," not in header:
        raise ValueError(f"unexpected header {header!r}")  # bug: task-exception-unretrieved
    return rows


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.compactor = asyncio.create_task(compact_index(), name="index-compactor")
    app.state.poller = asyncio.create_task(poll_feed("partner-a"), name="poller-partner-a")
    yield
    for task in (app.state.compactor, app.state.poller):
        task.cancel()
    await asyncio.gather(app.state.compactor, app.state.poller, return_exceptions=True)


app = FastAPI(lifespan=lifespan)


@app.get("/feeds")
async def feeds() -> dict[str, int]:
    return {feed: len(rows) for feed, rows in index.items()}


async def refresh(feed: str) -> None:
    await asyncio.sleep(0.05)  # the partner's HTTP endpoint
    index[feed] = parse_rows(FEEDS[feed])


@app.post("/feeds/{feed}/refresh", status_code=202)
async def refresh_feed(feed: str) -> dict[str, str]:
    asyncio.create_task(refresh(feed))
    return {"feed": feed, "status": "refreshing"}

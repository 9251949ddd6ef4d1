"""Jobs service: partner feeds are imported by pollers, one per partner, that an operator can
restart; a feed preview is fetched under a deadline, page by page with retries.

Faults: the poller's error handling is a bare `except:`, which takes `CancelledError` too, so a
restart cancels the old poller in vain and two run side by side; the preview's retry loop
retries on `CancelledError` as if it were a timeout, so the request's deadline cancels it in
vain and the request never answers.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, hold, post

SCENARIO = Scenario(
    calls=(
        post("/partners/acme/poller"),
        post("/partners/acme/poller", after=0.3),
        get("/partners"),
        hold("/partners/acme/preview", after=0.2),
    )
)

log = logging.getLogger("jobs")
app = FastAPI()
pollers: dict[str, asyncio.Task[None]] = {}
imported: dict[str, int] = {}


async def fetch_feed(partner: str, delay: float = 0.05) -> list[str]:
    await asyncio.sleep(delay)
    return [f"{partner}-job-{n}" for n in range(3)]


async def poll_partner(partner: str) -> None:
    while True:
        try:
            jobs = await fetch_feed(partner)
            imported[partner] = imported.get(partner, 0) + len(jobs)
            await asyncio.sleep(1.0)  # bug: cancellation-swallowed
        except:  # noqa: E722  # bug: cancellation-swallowed
            log.warning("feed %s failed, retrying", partner)


class PreviewClient:
    async def first_page(self, partner: str) -> list[str]:
        while True:
            try:
                page = fetch_feed(partner, 2.0)
                return await asyncio.wait_for(page, timeout=0.5)  # bug: cancellation-swallowed
            except (asyncio.TimeoutError, asyncio.CancelledError):  # bug: cancellation-swallowed
                log.info("preview page for %s timed out, retrying", partner)


previews = PreviewClient()


@app.post("/partners/{partner}/poller")
async def restart_poller(partner: str) -> dict[str, str]:
    old = pollers.pop(partner, None)
    if old is not None:
        old.cancel()
    pollers[partner] = asyncio.create_task(poll_partner(partner), name=f"poller-{partner}")
    return {"partner": partner, "status": "polling"}


@app.get("/partners")
async def partners() -> dict[str, int]:
    return imported


@app.get("/partners/{partner}/preview")
async def preview(partner: str) -> dict[str, object]:
    try:
        jobs = await asyncio.wait_for(previews.first_page(partner), timeout=0.3)
    except TimeoutError:
        jobs = []
    return {"partner": partner, "jobs": jobs}

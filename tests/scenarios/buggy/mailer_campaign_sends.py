"""Mailer service: marketing campaigns are delivered and audited in the background.

Faults: sending a campaign queues its delivery before checking the campaign was already sent, and
the 409 that follows discards the queued job; the preview endpoint returns a response with its own
background audit, which replaces the queued render; unsubscribing passes a coroutine to add_task.
"""

from __future__ import annotations

import asyncio

from fastapi import BackgroundTasks, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(
    calls=(
        post("/campaigns/spring-sale/send"),
        post("/campaigns/spring-sale/preview"),
        post("/unsubscribe/ada@example.com"),
    ),
    loop="uvloop",
)

app = FastAPI()
sent_campaigns = {"spring-sale"}
audit_trail: list[str] = []


class SuppressionList:
    def __init__(self) -> None:
        self.addresses: set[str] = set()

    async def add(self, address: str) -> None:
        await asyncio.sleep(0.01)  # the ESP's suppression API
        self.addresses.add(address)


suppressions = SuppressionList()


async def deliver(campaign: str) -> None:
    await asyncio.sleep(0.05)


def render_preview(campaign: str) -> None:
    audit_trail.append(f"preview rendered: {campaign}")


def audit(event: str) -> None:
    audit_trail.append(event)


@app.get("/campaigns")
async def campaigns() -> dict[str, list[str]]:
    return {"sent": sorted(sent_campaigns)}


@app.post("/campaigns/{campaign}/send", status_code=202)
async def send_campaign(campaign: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(deliver, campaign)  # bug: background-not-run
    if campaign in sent_campaigns:
        raise HTTPException(409, f"{campaign} was already sent")
    sent_campaigns.add(campaign)
    return {"campaign": campaign, "status": "sending"}


@app.post("/campaigns/{campaign}/preview")
async def preview_campaign(campaign: str, background_tasks: BackgroundTasks) -> JSONResponse:
    background_tasks.add_task(render_preview, campaign)  # bug: background-not-run
    return JSONResponse(
        {"campaign": campaign, "preview": "queued"},
        background=BackgroundTask(audit, f"preview requested: {campaign}"),
    )


@app.post("/unsubscribe/{address}")
async def unsubscribe(address: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(suppressions.add(address))  # bug: background-not-run
    return {"address": address, "status": "unsubscribed"}

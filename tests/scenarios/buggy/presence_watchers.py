"""Presence service: a client's subscription starts a watcher that polls the user's status.

Fault: every subscribe request starts a watcher task that loops forever and is never stopped when
the request (or the client) goes away; they pile up, one per request.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(
    calls=(
        post("/presence/team-a/subscribe", times=26),
        post("/presence/team-b/subscribe", times=4, after=0.6),
    )
)

app = FastAPI()
statuses: dict[str, str] = {}
watchers: list[asyncio.Task[None]] = []


class PresenceWatcher:
    def __init__(self, team: str, interval: float) -> None:
        self.team = team
        self.interval = interval
        self.last_seen: str | None = None

    async def run(self) -> None:
        while True:
            self.last_seen = statuses.get(self.team, "away")
            await asyncio.sleep(self.interval)


@app.post("/presence/{team}/subscribe")
async def subscribe(team: str) -> dict[str, int]:
    watcher = PresenceWatcher(team, interval=0.2)
    watchers.append(asyncio.create_task(watcher.run()))  # bug: task-leak
    return {"watchers": len(watchers)}


@app.put("/presence/{team}/{status}")
async def set_status(team: str, status: str) -> dict[str, str]:
    statuses[team] = status
    return {"team": team, "status": status}

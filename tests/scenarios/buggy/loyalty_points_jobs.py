"""Loyalty service: purchases earn points, credited by background jobs after the response.

Faults: the points job is built in a BackgroundTasks of its own that is never attached to the
response; a redemption queues its ledger entry, then fails validation with a custom exception
that a handler turns into a 422, which discards the queued job.
"""

from __future__ import annotations

import asyncio

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(
    calls=(post("/members/m-1/purchases?amount=120"), post("/members/m-1/redeem?points=900")),
)

app = FastAPI()
balances = {"m-1": 300}
ledger: list[tuple[str, int]] = []


class InsufficientPoints(Exception):
    def __init__(self, member: str, wanted: int) -> None:
        self.member, self.wanted = member, wanted


@app.exception_handler(InsufficientPoints)
async def insufficient(request: Request, error: InsufficientPoints) -> JSONResponse:
    return JSONResponse({"detail": f"{error.member} lacks {error.wanted} points"}, 422)


async def credit(member: str, points: int) -> None:
    await asyncio.sleep(0.01)
    balances[member] = balances.get(member, 0) + points


def record_entry(member: str, points: int) -> None:
    ledger.append((member, points))


class PointsPolicy:
    def earned(self, amount: int) -> int:
        return amount // 10

    def schedule_credit(self, member: str, amount: int) -> BackgroundTasks:
        jobs = BackgroundTasks()
        jobs.add_task(credit, member, self.earned(amount))  # bug: background-not-run
        return jobs


policy = PointsPolicy()


@app.post("/members/{member}/purchases")
async def purchase(member: str, amount: int) -> dict[str, int]:
    policy.schedule_credit(member, amount)
    return {"earned": policy.earned(amount)}


@app.post("/members/{member}/redeem")
async def redeem(member: str, points: int, background_tasks: BackgroundTasks) -> dict[str, int]:
    background_tasks.add_task(record_entry, member, -points)  # bug: background-not-run
    if balances.get(member, 0) < points:
        raise InsufficientPoints(member, points)
    balances[member] -= points
    return {"balance": balances[member]}


@app.get("/members/{member}")
async def balance(member: str) -> dict[str, int]:
    return {"balance": balances.get(member, 0)}

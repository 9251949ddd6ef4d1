"""Pricing service: every quote re-prices the whole rate card in Python.

Fault: each quote costs a few milliseconds of CPU on the event loop. No single request blocks
the loop for long, but under steady traffic the loop is never idle and every request waits
behind the others.
"""

from __future__ import annotations

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, load

SCENARIO = Scenario(calls=(load("/quotes/standard", clients=4, seconds=5.0),), watch=8.0)

app = FastAPI()
RATE_CARD = [
    (zone, weight, 1.0 + zone / 10 + weight / 100) for zone in range(40) for weight in range(800)
]


def reprice(plan: str) -> float:
    surcharge = 1.15 if plan == "express" else 1.0
    total = 0.0
    for zone, _weight, base in RATE_CARD:
        total += base * surcharge / (1 + zone) ** 0.5  # bug: loop-saturated
    return round(total, 2)


@app.get("/quotes/{plan}")
async def quote(plan: str) -> dict[str, float]:
    return {"price": reprice(plan)}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}

"""Ledger service: sync endpoints read a blocking database driver, exports use to_thread.

Healthy: a steady load of concurrent sync requests keeps many of anyio's threads busy but never
all of them, and the exports use a few of the default executor's threads, with nothing queued.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get

SCENARIO = Scenario(
    calls=(
        get("/accounts/a-1/balance", times=24),
        get("/accounts/a-2/balance", times=8, after=0.6),
        get("/exports/daily", times=2),
    ),
    watch=4.0,
)

app = FastAPI()


class LedgerDb:
    """A blocking driver, as psycopg2 or pyodbc are."""

    def balance(self, account: str) -> int:
        time.sleep(0.8)
        return 1200

    def dump(self, day: str) -> bytes:
        time.sleep(0.8)
        return b"entries"


db = LedgerDb()


@app.get("/accounts/{account}/balance")
def balance(account: str) -> dict[str, int]:
    return {"balance": db.balance(account)}


@app.get("/exports/{day}")
async def export(day: str) -> dict[str, int]:
    return {"bytes": len(await asyncio.to_thread(db.dump, day))}

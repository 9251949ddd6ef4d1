"""Accounts service: SQLAlchemy's async engine over SQLite, two pooled connections.

Fault: the statement export keeps its connection open while it waits for the slow archive
service, so two exports hold the whole pool and every balance lookup waits for a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.scenarios.spec import Scenario, hold

SCENARIO = Scenario(
    calls=(hold("/statements/export", times=2), hold("/balances/7", after=0.5, times=2)),
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'accounts.db'}"
        engine = create_async_engine(url, pool_size=2, max_overflow=0, pool_timeout=60)
        async with engine.begin() as conn:
            await conn.execute(text("create table balances (id integer, cents integer)"))
            await conn.execute(text("insert into balances values (7, 1250)"))
        app.state.db = engine
        yield
        await engine.dispose()


app = FastAPI(lifespan=lifespan)


async def archive(rows: list[tuple[int, int]]) -> None:
    await asyncio.sleep(30)  # the archive service is slow


@app.get("/statements/export")
async def export_statements() -> dict[str, int]:
    engine: AsyncEngine = app.state.db
    async with engine.connect() as conn:
        rows = [tuple(row) for row in await conn.execute(text("select * from balances"))]
        await archive(rows)  # the connection stays checked out meanwhile
    return {"rows": len(rows)}


@app.get("/balances/{account_id}")
async def balance(account_id: int) -> dict[str, int]:
    engine: AsyncEngine = app.state.db
    async with engine.connect() as conn:  # bug: pool-exhausted
        result = await conn.execute(
            text("select cents from balances where id = :id"), {"id": account_id}
        )
        return {"cents": result.scalar_one()}

"""Accounts service: transfers move money between two accounts, each guarded by its own lock.

Fault: a transfer locks its source account, then its target, through helper methods; two
transfers in opposite directions each take one lock and wait for the other's: a deadlock.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from fastapi import APIRouter, FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(
    calls=(
        get("/accounts/acc-1"),
        hold("/transfers?source=acc-1&target=acc-2&cents=500"),
        hold("/transfers?source=acc-2&target=acc-1&cents=700"),
    )
)


class AccountBook:
    def __init__(self) -> None:
        self.balances: dict[str, int] = defaultdict(lambda: 10_000)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def transfer(self, source: str, target: str, cents: int) -> None:
        async with self._locks[source]:  # bug: deadlock
            await self._check_limits(source, cents)
            await self._credit(target, cents)
            self.balances[source] -= cents

    async def _check_limits(self, account: str, cents: int) -> None:
        await asyncio.sleep(0.2)  # the limits service
        if cents > self.balances[account]:
            raise ValueError("insufficient funds")

    async def _credit(self, account: str, cents: int) -> None:
        async with self._locks[account]:  # bug: deadlock
            self.balances[account] += cents


book = AccountBook()
router = APIRouter(prefix="")


@router.get("/accounts/{account}")
async def balance(account: str) -> dict[str, int]:
    return {"cents": book.balances[account]}


@router.get("/transfers")
async def transfer(source: str, target: str, cents: int) -> dict[str, str]:
    await book.transfer(source, target, cents)
    return {"status": "done"}


app = FastAPI()
app.include_router(router)

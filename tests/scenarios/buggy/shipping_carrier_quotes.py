"""Shipping service: quotes come from a carrier API that needs an OAuth token.

Fault: the carrier client holds its token lock for the whole rate call, not just while it
refreshes the token, so concurrent quote requests queue behind each other one call at a time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import Depends, FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(calls=(get("/carriers"), hold("/quotes?weight_kg=3", times=6)))


class CarrierClient:
    def __init__(self) -> None:
        self._token: str | None = None
        self._expires = 0.0
        self._token_lock = asyncio.Lock()

    async def _refresh_token(self) -> None:
        await asyncio.sleep(0.05)
        self._token, self._expires = "tok-1", time.monotonic() + 300

    async def _post_rates(self, weight_kg: float) -> dict[str, float]:
        await asyncio.sleep(1.5)  # the carrier's rate endpoint is slow
        return {"ground": 4.5 + weight_kg, "express": 12.0 + 2 * weight_kg}

    async def rates(self, weight_kg: float) -> dict[str, float]:
        async with self._token_lock:  # bug: lock-contention
            if self._token is None or time.monotonic() > self._expires:
                await self._refresh_token()
            return await self._post_rates(weight_kg)  # bug: lock-contention


carrier = CarrierClient()


async def get_carrier() -> CarrierClient:
    return carrier


app = FastAPI()


@app.get("/carriers")
async def carriers() -> list[str]:
    return ["parcelco"]


@app.get("/quotes")
async def quote(
    weight_kg: float, client: Annotated[CarrierClient, Depends(get_carrier)]
) -> dict[str, float]:
    return await client.rates(weight_kg)

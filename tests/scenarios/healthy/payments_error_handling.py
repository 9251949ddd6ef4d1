"""Payments service: card charges with the errors of a payment provider handled properly.

Healthy: declined cards become a 402 through an exception handler, unknown payments a 404, a
provider timeout is retried and logged without a traceback, a missing cache file is expected and
suppressed narrowly. Exceptions are caught on purpose, and none is a fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(
        post("/payments/card-declined/charge", times=3),
        post("/payments/card-ok/charge", times=3),
        get("/payments/p-404", times=2),
    ),
    watch=4.0,
    run_args=("--trace-exceptions",),
)

log = logging.getLogger("payments")
app = FastAPI()
payments: dict[str, str] = {}
attempts: dict[str, int] = {}


class CardDeclined(Exception):
    def __init__(self, card: str) -> None:
        super().__init__(f"card {card} was declined")
        self.card = card


class ProviderTimeout(Exception):
    pass


@app.exception_handler(CardDeclined)
async def declined(request: Request, error: CardDeclined) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=402)


async def provider_charge(card: str) -> str:
    await asyncio.sleep(0.01)
    attempts[card] = attempts.get(card, 0) + 1
    if attempts[card] % 2:
        raise ProviderTimeout("provider did not answer in time")
    if card == "card-declined":
        raise CardDeclined(card)
    return f"pay-{card}-{attempts[card]}"


async def charge_with_retry(card: str) -> str:
    for attempt in range(3):
        try:
            return await provider_charge(card)
        except ProviderTimeout as error:
            log.warning("charge of %s timed out (attempt %d): %s", card, attempt + 1, error)
    raise HTTPException(504, "payment provider unavailable")


def drop_receipt_cache(card: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(f"/tmp/receipt-cache-{card}-does-not-exist")


@app.post("/payments/{card}/charge")
async def charge(card: str) -> dict[str, str]:
    drop_receipt_cache(card)
    payment = await charge_with_retry(card)
    payments[payment] = card
    return {"payment": payment}


@app.get("/payments/{payment}")
async def payment(payment: str) -> dict[str, str]:
    try:
        return {"card": payments[payment]}
    except KeyError:
        raise HTTPException(404, f"no payment {payment}") from None

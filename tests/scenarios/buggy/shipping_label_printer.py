"""Shipping service: labels are bought from the carrier's API and printed at the warehouse.

Faults: a rejected address is logged as an error with only its message and the order is answered
"queued" anyway, so the label is silently never printed; the nightly manifest upload logs its
failure with the traceback and carries on.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(
    calls=(post("/orders/o-12/label"), post("/manifests/today/upload")),
    loop="uvloop",
)

logger = logging.getLogger("shipping.labels")
app = FastAPI()
ADDRESSES = {"o-12": {"zip": "8001", "country": "CHE", "street": ""}}


class CarrierRejected(Exception):
    pass


class CarrierClient:
    async def buy_label(self, address: dict[str, str]) -> str:
        await asyncio.sleep(0.01)
        if not address["street"]:
            raise CarrierRejected(f"no street in {address['zip']}")  # bug: logged-error
        return "label-pdf"

    async def upload_manifest(self, day: str) -> None:
        await asyncio.sleep(0.01)
        raise ConnectionResetError(f"carrier SFTP closed the upload of {day}")  # bug: logged-error


carrier = CarrierClient()


@app.post("/orders/{order}/label", status_code=202)
async def print_label(order: str) -> dict[str, str]:
    try:
        await carrier.buy_label(ADDRESSES[order])
    except CarrierRejected as error:
        logger.error("label for %s not bought: %s", order, error)
    return {"order": order, "label": "queued"}


@app.post("/manifests/{day}/upload")
async def upload_manifest(day: str) -> dict[str, str]:
    try:
        await carrier.upload_manifest(day)
    except OSError:
        logger.error("manifest upload failed", exc_info=True)
    return {"day": day, "status": "uploaded"}

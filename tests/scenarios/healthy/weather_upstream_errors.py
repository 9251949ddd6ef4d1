"""Weather service: forecasts come from an upstream provider that is often slow or down.

Healthy: an upstream failure is logged (with its message, or with its traceback) and answered
with a deliberate 502 or 504 the client can act on; a stale cache entry is served with a warning.
Errors are logged on purpose and nothing is hidden: no warning is due.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, HTTPException

from tests.scenarios.spec import Scenario, get

SCENARIO = Scenario(
    calls=(
        get("/forecast/zurich", times=2),
        get("/forecast/oslo", times=2),
        get("/forecast/lima", times=2),
    ),
    watch=4.0,
    run_args=("--trace-exceptions",),
)

log = logging.getLogger("weather")
app = FastAPI()
stale = {"lima": {"city": "lima", "temp": 19.0}}


class UpstreamDown(Exception):
    pass


async def fetch(city: str) -> dict[str, object]:
    if city == "zurich":
        raise UpstreamDown("provider answered 503")
    await asyncio.sleep(0.5 if city == "oslo" else 0.01)
    if city == "lima":
        raise UpstreamDown("provider answered 500")
    return {"city": city, "temp": 4.0}


@app.get("/forecast/{city}")
async def forecast(city: str) -> dict[str, object]:
    try:
        async with asyncio.timeout(0.2):
            return await fetch(city)
    except TimeoutError:
        log.error("forecast for %s timed out", city)
        raise HTTPException(504, "the weather provider is slow, try again") from None
    except UpstreamDown as error:
        if city in stale:
            log.warning("serving a stale forecast for %s: %s", city, error)
            return stale[city]
        log.exception("forecast for %s failed", city)
        raise HTTPException(502, "the weather provider is down") from error

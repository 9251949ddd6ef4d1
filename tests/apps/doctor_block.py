"""An app whose async endpoint blocks the event loop with time.sleep (for doctor tests)."""

from __future__ import annotations

import time

from fastapi import FastAPI

app = FastAPI()


@app.get("/block")
async def block() -> dict[str, bool]:
    time.sleep(0.6)  # doctor-test: blocking line
    return {"ok": True}


@app.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}

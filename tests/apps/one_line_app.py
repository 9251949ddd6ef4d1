"""An app that adds the agent itself, in one line, and stays a FastAPI app for FastAPI's CLI."""

from __future__ import annotations

import time

from fastapi import FastAPI

import inspector.agent

app = FastAPI()
inspector.agent.instrument(app)


@app.get("/")
async def root() -> dict[str, bool]:
    return {"ok": True}


@app.get("/block")
async def block() -> dict[str, bool]:
    time.sleep(0.4)  # marker: blocks
    return {"blocked": True}

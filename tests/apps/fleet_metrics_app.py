"""A FastAPI app with the agent and its metrics mounted at /metrics, for the metrics tests.

``GET /stall?s=N`` holds the event loop in ``time.sleep``; ``GET /background-fails`` answers and
then runs a background job that raises; ``GET /orphan`` starts a task that fails with nobody
awaiting it; ``GET /slow/{item}?s=N`` awaits N seconds (a request in flight). Served with the
agent on a free port (``INSPECTOR_TEST_AGENT_PORT``, 0 by default).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time

from fastapi import BackgroundTasks, FastAPI

import inspector.agent
from inspector.agent import AgentConfig
from inspector.agent.metrics import metrics_app

api = FastAPI()
api.add_route("/metrics", metrics_app())


def send_report(user: str) -> None:
    raise ConnectionError(f"mail server refused the report for {user}")


async def lost_task() -> None:
    raise LookupError("nobody awaits this task")


@api.get("/stall")
async def stall(s: float = 0.3) -> dict[str, str]:
    time.sleep(s)  # blocks the event loop on purpose
    return {"slept": str(s)}


@api.get("/slow/{item}")
async def slow(item: int, s: float = 1.0) -> dict[str, int]:
    await asyncio.sleep(s)
    return {"item": item}


@api.get("/background-fails")
async def background_fails(tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(send_report, "ada")
    return {"queued": "send_report"}


@api.get("/orphan")
async def orphan() -> dict[str, str]:
    asyncio.get_running_loop().create_task(lost_task())  # no reference kept
    await asyncio.sleep(0.05)
    gc.collect()  # the finished, unreferenced task is collected: "never retrieved"
    return {"started": "lost_task"}


app = inspector.agent.instrument(
    api, AgentConfig(port=int(os.environ.get("INSPECTOR_TEST_AGENT_PORT", "0")))
)

"""Webhook relay (plain Starlette): incoming webhooks are acknowledged, then forwarded.

Faults: the forwarder, queued as a partial on the response's own BackgroundTask, raises on a
payload without a target; the event-id check raises on ids of the new format, and the signature
recorder, a callable object queued after it in the same BackgroundTasks, never runs.
"""

from __future__ import annotations

import functools
import json

from starlette.applications import Starlette
from starlette.background import BackgroundTask, BackgroundTasks
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(
    calls=(post("/hooks/github", '{"event": "push"}'), post("/hooks/stripe", '{"id": "evt_1"}')),
)

forwarded: list[str] = []


def forward(source: str, payload: dict[str, str]) -> None:
    target = ROUTES[payload["event"] if "event" in payload else "?"]  # bug: background-failed
    forwarded.append(f"{source} -> {target}")


ROUTES = {"push": "ci", "release": "deploys"}


class SignatureLog:
    def __init__(self) -> None:
        self.entries: list[str] = []

    def __call__(self, source: str) -> None:
        self.entries.append(source)


signatures = SignatureLog()


def parse_event_id(source: str, payload: dict[str, str]) -> None:
    int(payload["id"].removeprefix("evt_x"))  # bug: background-failed


async def github(request: Request) -> JSONResponse:
    payload = json.loads(await request.body())
    task = BackgroundTask(functools.partial(forward, "github", {"action": payload["event"]}))
    return JSONResponse({"accepted": True}, background=task)


async def stripe(request: Request) -> JSONResponse:
    payload = json.loads(await request.body())
    tasks = BackgroundTasks()
    tasks.add_task(parse_event_id, "stripe", payload)
    tasks.add_task(signatures, "stripe")  # bug: background-skipped
    return JSONResponse({"accepted": True}, background=tasks)


app = Starlette(
    routes=[
        Route("/hooks/github", github, methods=["POST"]),
        Route("/hooks/stripe", stripe, methods=["POST"]),
    ]
)

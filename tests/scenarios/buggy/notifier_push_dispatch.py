"""Push notification service: messages fan out to each of a user's devices.

Faults: the fan-out helper calls the gateway's async `send` without awaiting it, so no device is
ever notified; the audit dependency forgets the await on its write the same way.
"""

from __future__ import annotations

import asyncio

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(
    calls=(post("/users/u-1/notify", '{"title": "Your order shipped", "body": "Track it"}'),),
    loop="uvloop",
)

app = FastAPI()
DEVICES = {"u-1": ["ios-17", "android-3"]}


class Message(BaseModel):
    title: str
    body: str


class PushGateway:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []

    async def send(self, device: str, message: Message) -> None:
        await asyncio.sleep(0.01)  # APNs / FCM
        self.delivered.append((device, message.title))


class AuditLog:
    def __init__(self) -> None:
        self.entries: list[str] = []

    async def write(self, entry: str) -> None:
        await asyncio.sleep(0)
        self.entries.append(entry)


gateway = PushGateway()
audit_log = AuditLog()


async def audited(request: Request) -> None:
    audit_log.write(f"{request.method} {request.url.path}")  # bug: coroutine-never-awaited


async def fan_out(user: str, message: Message) -> int:
    devices = DEVICES.get(user, [])
    for device in devices:
        gateway.send(device, message)  # bug: coroutine-never-awaited
    return len(devices)


@app.post("/users/{user}/notify", dependencies=[Depends(audited)])
async def notify(user: str, message: Message) -> dict[str, int]:
    return {"devices": await fan_out(user, message)}


@app.get("/users/{user}/deliveries")
async def deliveries(user: str) -> dict[str, int]:
    return {"delivered": len(gateway.delivered)}

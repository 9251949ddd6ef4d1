"""Chat service: joining a room over HTTP starts a listener that relays the room's messages.

Fault: each join starts a listener task, kept in the room's registry and never cancelled when the
member's request ends; they wait on their queues forever and pile up, one per join.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(calls=(post("/rooms/general/join", times=28),), loop="uvloop")

app = FastAPI()


class Room:
    def __init__(self, name: str) -> None:
        self.name = name
        self.listeners: list[asyncio.Task[None]] = []
        self.inboxes: list[asyncio.Queue[str]] = []

    def add_listener(self, member: str) -> int:
        inbox: asyncio.Queue[str] = asyncio.Queue()
        self.inboxes.append(inbox)
        self.listeners.append(asyncio.ensure_future(self._relay(member, inbox)))  # bug: task-leak
        return len(self.listeners)

    async def _relay(self, member: str, inbox: asyncio.Queue[str]) -> None:
        while True:
            message = await inbox.get()
            await asyncio.sleep(0)  # the push to the member's connection
            del message


rooms: defaultdict[str, Room] = defaultdict(lambda: Room("room"))


@app.post("/rooms/{room}/join")
async def join(room: str, member: str = "guest") -> dict[str, int]:
    return {"listeners": rooms[room].add_listener(member)}


@app.post("/rooms/{room}/say")
async def say(room: str, text: str) -> dict[str, int]:
    for inbox in rooms[room].inboxes:
        inbox.put_nowait(text)
    return {"delivered": len(rooms[room].inboxes)}

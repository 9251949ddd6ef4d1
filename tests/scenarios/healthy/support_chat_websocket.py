"""Support chat: agents and customers talk over websockets; a room wakes its members when a
message arrives.

Healthy: each websocket stays open for the whole conversation, waiting on the client or on its
room's next message; that is what a websocket does.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from tests.scenarios.spec import Scenario, get, websocket

SCENARIO = Scenario(
    calls=(
        get("/rooms"),
        websocket("/ws/rooms/r-1/agent"),
        websocket("/ws/rooms/r-1/listen", times=2),
    ),
    watch=5.0,
)


class Room:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.arrived = asyncio.Event()

    def post(self, text: str) -> None:
        self.messages.append(text)
        self.arrived.set()
        self.arrived = asyncio.Event()


rooms: dict[str, Room] = {"r-1": Room()}
app = FastAPI()


@app.get("/rooms")
async def list_rooms() -> list[str]:
    return sorted(rooms)


@app.websocket("/ws/rooms/{room_id}/agent")
async def agent_socket(socket: WebSocket, room_id: str) -> None:
    await socket.accept()
    try:
        while True:
            rooms[room_id].post(await socket.receive_text())
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/rooms/{room_id}/listen")
async def listen_socket(socket: WebSocket, room_id: str) -> None:
    await socket.accept()
    room = rooms[room_id]
    seen = len(room.messages)
    while True:
        await room.arrived.wait()
        for text in room.messages[seen:]:
            await socket.send_text(text)
        seen = len(room.messages)

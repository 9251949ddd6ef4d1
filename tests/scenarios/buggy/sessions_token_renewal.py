"""Session service: each login starts a task that renews the session's token when signalled.

Fault: the renewal task is created and dropped, and it waits on a future that only a weak registry
knows about; nothing holds the task, so the garbage collector destroys it while it is pending and
no token is ever renewed.
"""

from __future__ import annotations

import asyncio
import secrets
import weakref

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(
        post("/sessions/alice/login", times=3),
        get("/sessions?detail=full", times=6, after=0.4),
        get("/sessions?detail=full", times=6, after=1.5),
    )
)

app = FastAPI()
tokens: dict[str, str] = {}


class RenewalSignals:
    """Futures by session, held weakly so that ended sessions do not linger here."""

    def __init__(self) -> None:
        self._waiting: weakref.WeakValueDictionary[str, asyncio.Future[None]] = (
            weakref.WeakValueDictionary()
        )

    def register(self, session: str) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self._waiting[session] = future
        return future

    def fire(self, session: str) -> bool:
        future = self._waiting.get(session)
        if future is None or future.done():
            return False
        future.set_result(None)
        return True


signals = RenewalSignals()


async def renew_when_signalled(session: str) -> None:
    while True:
        await signals.register(session)
        tokens[session] = secrets.token_hex(16)


@app.post("/sessions/{user}/login")
async def login(user: str) -> dict[str, str]:
    session = f"{user}-{secrets.token_hex(4)}"
    tokens[session] = secrets.token_hex(16)
    asyncio.create_task(renew_when_signalled(session))  # bug: task-destroyed-pending
    return {"session": session}


@app.post("/sessions/{session}/renew")
async def renew(session: str) -> dict[str, bool]:
    return {"renewed": signals.fire(session)}


@app.get("/sessions")
async def list_sessions(detail: str = "short") -> dict[str, int]:
    # Builds a full view of every session (and a lot of short-lived objects with it).
    views = [{"session": s, "token": t, "scopes": ["read", "write"]} for s, t in tokens.items()]
    audit = [dict(view, page=n) for n in range(400) for view in views[:3]]
    return {"sessions": len(views), "audit_rows": len(audit)}

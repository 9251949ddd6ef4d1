"""A server whose tasks, requests, threads, jobs and errors carry text meant to attack a terminal.

`GET /spawn` parks one task per entry of `HOSTILE`, named with it, running a coroutine whose
name, file and source line are hostile too; starts a thread with a hostile name; logs a hostile
error; starts a fire-and-forget task that fails with a hostile message and a task that blocks
the loop for half a second at a hostile line. `POST /job` queues a background job with a
hostile name that fails the same way. Any other path is held open for `?hold=` seconds, so a
hostile request path stays in flight. The clients must show all of it escaped and never parse
it as markup.
"""

from __future__ import annotations

import asyncio
import linecache
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import BackgroundTasks, FastAPI

HOSTILE: dict[str, str] = {
    "ansi": "\x1b[31;1mRED\x1b[0m",
    "osc52": "\x1b]52;c;cm0gLXJmIH4K\x07",  # sets the clipboard to `rm -rf ~`
    "title": "\x1b]0;pwned\x07\x1b[2J\x1b[H",  # retitles the window, clears the screen
    "c1": "\x9b2J\x9d0;c1\x9c",  # CSI and OSC as single C1 characters
    "markup": "[bold]x[/bold][link=https://example.com]y[/link][B]z[/B][$text-error]w[/]",
    "bidi": "txt\u202egpj.exe",
    "surrogate": "x\ud800y",
}
EVERYTHING = "".join(HOSTILE.values())
ENCODABLE = "".join(text for key, text in HOSTILE.items() if key != "surrogate")
"""What Python source can hold (a file cannot contain a lone surrogate)."""
HOSTILE_FILE = f"/srv/app/hostile{HOSTILE['osc52']}{HOSTILE['bidi']}.py"
"""The file the parked coroutine's code claims to come from (what `c` copies)."""

app = FastAPI()
logger = logging.getLogger("hostile_text_app")
_kept: list[asyncio.Task[None]] = []
_threads: list[threading.Thread] = []
_stop_threads = threading.Event()


def _hostile_functions() -> dict[str, Any]:
    """Functions compiled as if from HOSTILE_FILE, with hostile names and source lines."""
    source = (
        "async def parked(gate):\n"
        f"    await gate.wait()  # {ENCODABLE}\n"
        "async def blocks(seconds):\n"
        f"    time.sleep(seconds)  # {ENCODABLE}\n"
    )
    namespace: dict[str, Any] = {"time": time}
    exec(compile(source, HOSTILE_FILE, "exec"), namespace)  # noqa: S102 - a fixed test string
    lines = source.splitlines(keepends=True)
    linecache.cache[HOSTILE_FILE] = (len(source), None, lines, HOSTILE_FILE)
    functions = {}
    for plain_name in ("parked", "blocks"):
        function = namespace[plain_name]
        name = f"{plain_name}{EVERYTHING}"
        function.__code__ = function.__code__.replace(co_name=name, co_qualname=name)
        function.__qualname__ = name
        functions[plain_name] = function
    return functions


_functions = _hostile_functions()
parked: Callable[[asyncio.Event], Coroutine[Any, Any, None]] = _functions["parked"]
blocks: Callable[[float], Coroutine[Any, Any, None]] = _functions["blocks"]
"""Blocks the event loop: a stall in a hostile task, at a hostile line."""


async def fails(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


def failing_job() -> None:
    raise RuntimeError(f"job failed: {EVERYTHING}")


failing_job.__qualname__ = failing_job.__name__ = f"job{EVERYTHING}"


@app.get("/spawn")
async def spawn() -> dict[str, int]:
    gate = asyncio.Event()  # never set
    for key, text in HOSTILE.items():
        _kept.append(asyncio.create_task(parked(gate), name=f"hostile-{key}-{text}"))
    asyncio.create_task(fails(f"failed: {EVERYTHING}"), name=f"fails{EVERYTHING}")  # noqa: RUF006
    _kept.append(asyncio.create_task(blocks(0.5), name=f"blocks{EVERYTHING}"))
    thread = threading.Thread(target=_stop_threads.wait, name=f"thread{EVERYTHING}", daemon=True)
    thread.start()
    _threads.append(thread)
    logger.error("logged: %s", EVERYTHING)
    return {"tasks": len(_kept)}


@app.post("/job")
async def job(background_tasks: BackgroundTasks) -> dict[str, bool]:
    background_tasks.add_task(failing_job)
    return {"queued": True}


@app.get("/{rest:path}")
async def hold(rest: str, hold: float = 0.0) -> dict[str, str]:
    await asyncio.sleep(min(hold, 120.0))
    return {"path": rest}

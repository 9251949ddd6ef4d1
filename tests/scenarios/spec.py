"""How a scenario app says what it contains and how to set it off.

A scenario is an app written like a production service (a domain, several endpoints, lifespan
work) with its faults marked where they are: a line ending in ``# bug: KIND`` is a line doctor
must name with a finding of that kind (``# bug: KIND|OTHER`` accepts either). A healthy
scenario lives under ``healthy/`` and has no marks: doctor must raise no warning on it.

Each module defines ``SCENARIO = Scenario(...)``: the requests that set the faults off (or, for
a healthy app, that tempt a false alarm) and how the server is run. Only the standard library is
imported here: the apps import this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

MARK: Final = re.compile(r"#\s*bug:\s*(?P<kinds>[a-z-]+(?:\|[a-z-]+)*)\s*$")

Mode = Literal["complete", "hold", "stream", "websocket", "load"]


@dataclass(frozen=True)
class Call:
    """Requests sent to the server once it is ready."""

    path: str
    method: str = "GET"
    body: bytes = b""
    times: int = 1
    """How many of them; all sent at once (each on its own connection)."""
    after: float = 0.0
    """Seconds to wait after the server is ready before sending them."""
    mode: Mode = "complete"
    """complete: read the whole response; hold: send and never read (stays in flight);
    stream: keep reading a streaming response; websocket: open one and keep it open;
    load: `times` clients each sending requests one after another for `seconds`."""
    seconds: float = 0.0


def get(path: str, *, times: int = 1, after: float = 0.0) -> Call:
    return Call(path, times=times, after=after)


def post(path: str, body: str = "{}", *, times: int = 1, after: float = 0.0) -> Call:
    return Call(path, method="POST", body=body.encode(), times=times, after=after)


def hold(path: str, *, times: int = 1, after: float = 0.0) -> Call:
    return Call(path, times=times, after=after, mode="hold")


def stream(path: str, *, times: int = 1, after: float = 0.0) -> Call:
    return Call(path, times=times, after=after, mode="stream")


def load(path: str, *, clients: int = 4, seconds: float = 4.0, after: float = 0.0) -> Call:
    """Steady traffic: `clients` connections, each sending the next request when the last
    is answered, for `seconds`."""
    return Call(path, times=clients, after=after, mode="load", seconds=seconds)


def websocket(path: str, *, times: int = 1, after: float = 0.0) -> Call:
    return Call(path, times=times, after=after, mode="websocket")


@dataclass(frozen=True)
class Scenario:
    calls: tuple[Call, ...]
    loop: Literal["asyncio", "uvloop"] = "asyncio"
    stuck_after: float = 1.0
    """doctor's --stuck-after: the scenarios' hangs are short so the corpus runs quickly."""
    watch: float = 6.0
    """Healthy apps: how long doctor watches after the calls. Buggy apps: the longest wait for
    every mark to be named (they stop as soon as all are)."""
    min_python: tuple[int, int] = (3, 10)
    """Faults the agent can only see from this Python on (swallowed exceptions: 3.12)."""
    run_args: tuple[str, ...] = field(default=())
    """Extra `inspector run` options."""


@dataclass(frozen=True)
class Mark:
    """One line doctor must name, and the kinds that count."""

    line: int
    kinds: tuple[str, ...]
    text: str


def marks(source: Path) -> tuple[Mark, ...]:
    """The ``# bug:`` lines of a scenario's source file."""
    found = []
    for number, text in enumerate(source.read_text().splitlines(), start=1):
        match = MARK.search(text)
        if match:
            code = text[: match.start()].strip()
            found.append(Mark(number, tuple(match["kinds"].split("|")), code))
    return tuple(found)

"""`--pid PID` on a server without an agent: inject one, asked first by `attach`.

The offer is made only for a process that serves requests and has no agent (what `inspector
inject` can start one in); anything else keeps the plain "no agent" line. `attach` asks a person
at a terminal (y/N); `--inject` skips the question, and is how `dump` and `doctor` (which never
ask) start one; without a terminal to ask on, one line says how to go on, and nothing is
injected.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from inspector.errors import InspectorError

if TYPE_CHECKING:
    from inspector.client.source import Source


def offer_injection(
    pid: int,
    no_agent: InspectorError,
    *,
    ask: bool,
    need_terminal: Callable[[], None],
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
) -> Source:
    """The source of an agent injected into `pid` (asked first when `ask`); raises
    `no_agent`, the lookup's own line, when `pid` is no server to inject into."""
    from inspector.client.target import open_source
    from inspector.commands import inject

    described = _server_without_agent(pid)
    if described is None:
        raise no_agent
    if ask and not sys.stdin.isatty():
        raise InspectorError(
            f"no agent in pid {pid}; pass --inject to start one in it, or run "
            f"`inspector inject {pid}` first"
        )
    need_terminal()  # the UI needs one: nothing is injected for a UI that cannot open
    if ask and not _confirm(f"pid {pid} ({described}) has no agent; inject one now? [y/N] "):
        raise InspectorError(f"not injected: no agent in pid {pid} to attach to")
    host, port = inject.start(pid, inject.check_target(pid))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return open_source(address, connect_timeout=connect_timeout, command_timeout=command_timeout)


def open_or_inject(
    target: str | None,
    pid: int | None,
    *,
    inject: bool,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
) -> Source:
    """The source for TARGET / `--pid`; with `inject`, an agent is started in `pid` first when
    it has none (`dump --inject`, `doctor --inject`)."""
    from inspector.client.source import ConnectError
    from inspector.client.target import open_source

    if inject and (pid is None or target is not None):
        raise InspectorError("--inject goes with --pid PID (the server to start the agent in)")
    try:
        return open_source(
            target, pid, connect_timeout=connect_timeout, command_timeout=command_timeout
        )
    except ConnectError as no_agent:
        if not inject or pid is None:
            raise
        return offer_injection(
            pid,
            no_agent,
            ask=False,
            need_terminal=_nothing,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )


def _nothing() -> None:
    """`dump` and `doctor` need no terminal."""


def _server_without_agent(pid: int) -> str | None:
    """How `pid` is shown in the question ("uvicorn app:app") when it serves requests and
    has no agent; None otherwise."""
    from inspector.client.discovery import discover
    from inspector.escape import printable

    try:
        found = next((t for t in discover(sample_seconds=0) if t.pid == pid), None)
    except Exception:  # discovery reads other processes; unknown means no offer
        return None
    if found is None or not found.serves_requests or found.agent is not None:
        return None
    if found.app:
        return printable(f"{found.server} {found.app}")
    command = " ".join(found.cmdline) or found.server
    return printable(command if len(command) <= 60 else command[:57] + "...")


def _confirm(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")

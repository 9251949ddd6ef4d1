"""`attach --pid PID` on a server without an agent: offer to inject one, with one confirmation.

The offer is made only for a process that serves requests and has no agent (what `inspector
inject` can start one in); anything else keeps the plain "no agent" line. A person at a
terminal is asked (y/N); `--inject` skips the question; without a terminal to ask on, one line
says how to go on, and nothing is injected.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from inspector.errors import InspectorError

if TYPE_CHECKING:
    from inspector.client.source import Source


def offer_injection(
    pid: int, no_agent: InspectorError, *, ask: bool, need_terminal: Callable[[], None]
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
    return open_source(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


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

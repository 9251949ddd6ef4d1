"""`inspector ps`: every uvicorn-like server on this machine, its workers and their agents."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from inspector.errors import ExitStatus
from inspector.escape import printable

HEADERS = ("PID", "ROLE", "SERVER", "APP", "AGENT", "CPU", "RSS", "UPTIME", "LISTEN")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ps",
        help="list running uvicorn servers, their workers and their agents",
        description=(
            "List the uvicorn, gunicorn, hypercorn and fastapi servers on this machine, each "
            "worker under its parent, with the address of the inspector agent in each (attach "
            "with `inspector attach --pid PID`). Servers without the agent say how to add it."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from inspector.client.discovery import discover

    targets = discover()
    if args.json:
        print(json.dumps({"targets": [t.to_json_dict() for t in targets]}, indent=1))
        return ExitStatus.OK
    print(render_table(targets))
    return ExitStatus.OK


def render_table(targets: Sequence[Any]) -> str:
    """The `ps` table: workers indented under their parent, then how to add missing agents.

    Roles, servers, apps and addresses come from other processes' command lines and
    registration files: shown escaped.
    """
    from inspector.client.discovery import (
        UNREGISTERED_HINT,
        depth_of,
        missing_agent_hint,
        subtree,
    )

    if not targets:
        return "No uvicorn, gunicorn, hypercorn or fastapi server is running on this machine."
    rows = [HEADERS]
    for target in targets:
        indent = "  " * depth_of(target, targets)
        rows.append(
            (
                indent + str(target.pid),
                printable(target.role),
                printable(target.server),
                printable(target.app or "-"),
                printable(target.agent_address or _no_agent(target)),
                "-" if target.cpu_percent is None else f"{target.cpu_percent:.1f}%",
                _megabytes(target.rss),
                _duration(target.uptime),
                _app_ports(target),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = [_row_text(row, widths) for row in rows]
    notes = []
    for target in targets:
        if depth_of(target, targets) != 0:
            continue
        group = subtree(target.pid, targets)
        if any(member.agent is not None for member in group):
            continue
        if target.server == "inspector":
            notes.append(f"{target.pid}: {UNREGISTERED_HINT}")
            continue
        notes.append(
            f"{target.pid}: no inspector agent in this server: "
            + missing_agent_hint(target.server, target.app)
        )
    parents = [
        t
        for t in targets
        if not t.serves_requests and any(m.agent for m in subtree(t.pid, targets))
    ]
    if parents:
        notes.append(
            "parents and reloaders serve no requests: attach to a worker "
            "(`inspector attach --pid WORKER_PID`)"
        )
    return "\n".join(lines + ([""] + [printable(note) for note in notes] if notes else []))


def _row_text(row: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def _no_agent(target: Any) -> str:
    if not target.serves_requests:
        return "-"
    return "unregistered" if target.server == "inspector" else "no agent"


def _app_ports(target: Any) -> str:
    """Listening ports minus the agent's own (termui and webui)."""
    own = {target.agent[1]} if target.agent else set()
    if target.webui_port:
        own.add(target.webui_port)
    ports = [str(port) for port in target.listening if port not in own]
    return ",".join(ports) or "-"


def _megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 1_048_576:.0f} MB"


def _duration(seconds: float | None) -> str:
    from inspector.durations import duration

    return "-" if seconds is None else duration(float(int(seconds)))

"""Provides the target picker: the servers on this machine, for `inspector attach` without a target.

Registration files come first (processes running the agent), then what psutil finds
(uvicorn, gunicorn, hypercorn and fastapi processes without an agent, with the way to add one).
Choosing a server that serves requests without an agent offers to inject one (one question).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Static

from inspector.tui import formatting
from inspector.tui.content import plain, printable
from inspector.tui.screens.confirm import ConfirmScreen
from inspector.tui.widgets.live_table import Column, LiveTable, Row


@dataclass(frozen=True)
class Candidate:
    """One process the picker offers."""

    pid: int
    command: str
    role: str = ""
    workers: int = 0
    cpu_percent: float | None = None
    rss: int | None = None
    address: str | None = None
    """The agent's termui address; None when the process has no agent."""
    hint: str | None = None
    """How to add an agent, for a process that has none."""
    serves: bool = False
    """It serves requests itself (not a supervisor): an agent can be injected into it."""


@dataclass(frozen=True)
class Choice:
    """What the picker returns: an agent to attach to, or a server to inject one into first."""

    address: str | None = None
    inject_pid: int | None = None


def list_candidates() -> list[Candidate]:
    """Discovered targets, agent-equipped first; registration files alone if discovery is absent."""
    try:
        from inspector.client.discovery import discover
    except ImportError:
        return _from_registrations()
    candidates = [_from_target(target) for target in discover()]
    return sorted(candidates, key=lambda c: (c.address is None, c.pid))


def _from_target(target: Any) -> Candidate:
    cmdline = getattr(target, "cmdline", ()) or ()
    return Candidate(
        pid=target.pid,
        command=" ".join(cmdline) or (target.app or ""),
        role=str(getattr(target, "role", "")),
        workers=len(getattr(target, "children", ()) or ()),
        cpu_percent=getattr(target, "cpu_percent", None),
        rss=getattr(target, "rss", None),
        address=target.agent_address,
        hint=getattr(target, "hint", None),
        serves=bool(getattr(target, "serves_requests", False)),
    )


def _from_registrations() -> list[Candidate]:
    try:
        from inspector.registration import read_registrations
    except ImportError:
        return []
    return [
        Candidate(
            pid=r.pid, command=" ".join(r.argv) or (r.app or ""), address=f"{r.host}:{r.port}"
        )
        for r in read_registrations()
    ]


COLUMNS = (
    Column("pid", "PID", 7, align="right"),
    Column("command", "Command", 30, flex=True),
    Column("role", "Role", 10, min_width=90),
    Column("workers", "Workers", 7, align="right", min_width=100),
    Column("cpu", "CPU", 5, align="right"),
    Column("rss", "RSS", 9, align="right"),
    Column("agent", "Agent", 16),
)


def candidate_row(candidate: Candidate) -> Row:
    return (
        str(candidate.pid),
        candidate.command,
        candidate.role,
        str(candidate.workers) if candidate.workers else "",
        f"{candidate.cpu_percent:.0f}%" if candidate.cpu_percent is not None else "—",
        formatting.size(candidate.rss),
        (candidate.address, "success") if candidate.address else ("no agent", "muted"),
    )


class PickerApp(App[Choice]):
    """Returns the chosen agent, or the server to inject one into (None when the user quits)."""

    CSS = """
    #picker-title { padding: 0 1; text-style: bold; }
    #picker-hint { padding: 0 1; color: $text-muted; height: auto; }
    ConfirmScreen { align: center middle; }
    #confirm-dialog { width: 70; height: auto; border: thick $warning; padding: 1 2; }
    #confirm-buttons { height: auto; margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q,escape", "quit", "Quit")]

    def __init__(self, candidates: list[Candidate]) -> None:
        super().__init__()
        self.candidates = {str(c.pid): c for c in candidates}

    def compose(self) -> ComposeResult:
        yield Static(
            "Choose a server to inspect (Enter). Nothing answers on 127.0.0.1:20101.",
            id="picker-title",
        )
        yield LiveTable(COLUMNS, id="picker-table", empty_text="No server found.")
        yield Static("", id="picker-hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(LiveTable)
        table.sync((key, candidate_row(c)) for key, c in self.candidates.items())
        table.focus()

    @on(LiveTable.Highlighted)
    def explain(self, event: LiveTable.Highlighted) -> None:
        candidate = self.candidates.get(event.key or "")
        hint = self.query_one("#picker-hint", Static)
        if candidate is None:
            hint.update("")
        elif candidate.address:
            hint.update(plain(f"pid {candidate.pid}: agent on {candidate.address}"))
        elif candidate.serves:
            hint.update(plain(f"pid {candidate.pid} has no agent: Enter offers to inject one"))
        else:
            hint.update(
                plain(
                    f"pid {candidate.pid} has no agent: "
                    f"{candidate.hint or 'start it with inspector run'}"
                )
            )

    @on(LiveTable.Selected)
    def choose(self, event: LiveTable.Selected) -> None:
        candidate = self.candidates[event.key]
        if candidate.address:
            self.exit(Choice(address=candidate.address))
        elif candidate.serves:
            self.push_screen(
                ConfirmScreen(
                    f"pid {candidate.pid} has no agent; inject one now?",
                    "The agent starts inside the running server, without a restart (as "
                    f"`inspector inject {candidate.pid}`); `inspector inject --detach "
                    f"{candidate.pid}` removes it.",
                    yes_label="Inject",
                ),
                callback=lambda yes: self.exit(Choice(inject_pid=candidate.pid)) if yes else None,
            )
        else:
            self.notify(
                printable(candidate.hint or "This process has no inspector agent."),
                severity="warning",
                timeout=8,
                markup=False,
            )


def pick_target(candidates: list[Candidate]) -> Choice | None:
    """Run the picker; what was chosen, or None."""
    return PickerApp(candidates).run()

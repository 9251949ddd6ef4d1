"""Provides HelpScreen: the keys, and what each view shows."""

from __future__ import annotations

from typing import ClassVar, Final

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: Final = (
    (
        "1–8",
        "switch view: Findings, Tasks, Task, Requests, Background, Threads, Stalls, Exceptions",
    ),
    ("9", "Workers: every worker of a --workers N server side by side (attach --pid PARENT)"),
    ("w / W", "show the next / previous worker (also enter on a row of Workers)"),
    ("tab / shift+tab", "move focus: into a stack or traceback below a list, ↑ ↓ pick a frame"),
    ("↑ ↓ PgUp PgDn Home End", "move in a list"),
    ("enter", "open: a finding's evidence, a task's detail, a request's task, a folded run"),
    ("/", "filter the list as you type, in every view (#12: task #12); esc clears"),
    ("o / O", "Tasks: sort by age, state, name / reverse"),
    ("g", "Tasks: group by coroutine (enter on a group filters to it)"),
    ("t / r / h", "go to the task / the request / the worker thread"),
    ("x", "cancel the selected task (asks first; refused when read-only)"),
    ("c", "copy the highlighted file:line"),
    ("e", "open the highlighted file:line in $VISUAL / $EDITOR"),
    ("f", "stacks and tracebacks: every frame / only your code (the default)"),
    ("s", "save the snapshot on screen as JSON in the current directory"),
    ("p", "pause / resume polling"),
    ("+ / -", "poll less / more often"),
    ("ctrl+p", "command palette"),
    ("?", "this help"),
    ("q", "quit"),
)


ABOUT: Final = (
    "The header shows the target, whether the data is live and how old it is, and the "
    "process's CPU, memory, threads, files, connections and event-loop lag. A red banner "
    "appears while the event loop is blocked. When the target goes away the last data "
    "stays on screen and the inspector reconnects when it is back; when retrying cannot "
    "help (an agent of another version, a server that is not an agent) it says so and stops."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Static(
                Content.from_markup("[b]uvicorn-inspector[/b] — keys"), classes="help-title"
            )
            for key, text in KEYS:
                with Horizontal(classes="help-row"):
                    yield Static(key, classes="help-key")
                    yield Static(text, classes="help-text")
            yield Static(ABOUT, classes="help-about")

    async def action_dismiss(self, result: object = None) -> None:
        self.dismiss(None)

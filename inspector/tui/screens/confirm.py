"""Provides ConfirmScreen: a yes/no question before anything acts on the target."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from inspector.model import TaskInfo
from inspector.tui import formatting
from inspector.tui.content import plain


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True only for an explicit yes; Escape and "n" say no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "", *, yes_label: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.yes_label = yes_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            # The question names a task: text from the target, shown escaped and plain.
            yield Static(plain(self.question), id="confirm-question")
            if self.detail:
                yield Static(plain(self.detail), id="confirm-detail")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes_label} (y)", variant="error", id="confirm-yes")
                yield Button("No (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed)
    def answer_button(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


def confirm_cancel(task: TaskInfo) -> ConfirmScreen:
    """The question before cancelling `task`: what it runs, where, and what cancelling does."""
    detail = f"{task.coro} at {formatting.task_where(task)}. It receives CancelledError at its " + (
        "current await and its request fails." if task.request_id is not None else "current await."
    )
    return ConfirmScreen(f"Cancel {task.name} (#{task.id})?", detail, yes_label="Cancel task")

"""Provides FilterBar: the `/` filter line of a list view, with what it matched beside it.

One widget for every view, so `/`, typing, enter and esc behave the same everywhere. While its
input has focus, keys type text: the input takes every printable key before any binding of the
view or the app sees it (typing "hang" never fires `h`).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Input, Static


class FilterInput(Input):
    """The text typed after `/`."""


class FilterBar(Horizontal):
    """Hidden until `/` (unless `always`); stays while it holds text, so the filter is seen."""

    DEFAULT_CSS = """
    FilterBar { height: 1; display: none; }
    FilterBar.-shown { display: block; }
    FilterBar > FilterInput {
        width: 1fr; height: 1; border: none; padding: 0 1; background: $boost;
    }
    FilterBar > FilterInput:focus { border: none; background: $primary 20%; }
    FilterBar > .filter-summary { width: auto; padding: 0 1; color: $text-muted; }
    """

    summary: reactive[str] = reactive("", layout=True)
    """What the filter matched ("3 of 12"), or what the list holds."""

    def __init__(
        self,
        placeholder: str,
        *,
        always: bool = False,
        input_id: str | None = None,
        summary_id: str | None = None,
    ) -> None:
        super().__init__()
        self.placeholder = placeholder
        self.always = always
        self.input_id = input_id
        self.summary_id = summary_id

    def compose(self) -> ComposeResult:
        yield FilterInput(placeholder=self.placeholder, id=self.input_id)
        yield Static("", id=self.summary_id, classes="filter-summary")

    def on_mount(self) -> None:
        self._show_or_hide()

    @property
    def input(self) -> FilterInput:
        return self.query_one(FilterInput)

    @property
    def value(self) -> str:
        return self.input.value

    def open(self) -> None:
        self.set_class(True, "-shown")
        self.input.focus()

    def clear(self) -> None:
        self.input.value = ""
        self._show_or_hide()

    def watch_summary(self, summary: str) -> None:
        self.query_one(".filter-summary", Static).update(summary)

    def on_input_changed(self) -> None:
        self._show_or_hide()

    def on_descendant_blur(self) -> None:
        self._show_or_hide()

    def _show_or_hide(self) -> None:
        self.set_class(self.always or bool(self.input.value) or self.input.has_focus, "-shown")

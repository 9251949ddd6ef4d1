"""Provides ViewTabs, the tabs that hold the views: which one is on screen, bringing a hidden one
up to date when it is shown, the jumps between them, and the counts in their labels.

The views are its children, so it is the parent their `OpenTask`, `OpenRequest` and
`OpenThread` messages reach first: it handles them itself. The observation and the roster come
down from the app through `data_bind`; a new observation is shown by the view on screen only,
the others are marked stale (drawing eight views a second would cost the visible one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from textual import events, on
from textual.reactive import var
from textual.widgets import TabbedContent

from inspector.tui.messages import OpenRequest, OpenTask, OpenThread
from inspector.tui.poller import Observation
from inspector.tui.switcher import WorkerRoster
from inspector.tui.tabs import Tab, tab_labels
from inspector.tui.views.base import View
from inspector.tui.views.requests import RequestsView
from inspector.tui.views.task_detail import TaskDetailView
from inspector.tui.views.threads import ThreadsView

_V = TypeVar("_V", bound=View)


class ViewTabs(TabbedContent):
    """One tab per view, the first on screen; compose it with a `TabPane` per tab in `tabs`."""

    observation: var[Observation | None] = var(None, init=False)
    """The newest data; bound to the app's state."""
    roster: var[WorkerRoster | None] = var(None, init=False)
    """The parent's workers, counted in the Workers tab's label; bound to the app's state."""

    def __init__(self, tabs: Sequence[Tab], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(initial=tabs[0].id, id=id)
        self.tabs = tuple(tabs)
        self._labels: dict[str, str] = {}
        self._previous: str | None = None
        self._views: dict[str, View] = {}

    @property
    def active_view(self) -> View:
        return self.view(self.active or self.tabs[0].id)

    def view(self, view_id: str) -> View:
        if view_id not in self._views:
            self._views[view_id] = self.query_one(f"#{view_id}-view", View)
        return self._views[view_id]

    # --- data ----------------------------------------------------------------------------

    def watch_observation(self, observation: Observation | None) -> None:
        if not self.is_mounted:
            return
        self.refresh_labels()
        if observation is None:
            return
        for tab in self.tabs:
            self.view(tab.id).stale = True
        self.active_view.show(observation)

    def watch_roster(self) -> None:
        if self.is_mounted:
            self.refresh_labels()

    def on_resize(self, event: events.Resize) -> None:
        self.refresh_labels()

    def refresh_labels(self) -> None:
        """Set the labels that changed ("4 Requests 12"; "4 Req 12" below 100 columns)."""
        workers = len(self.roster.workers) if self.roster is not None else None
        width = self.screen.size.width
        for tab_id, label in tab_labels(self.tabs, self.observation, workers, width).items():
            if self._labels.get(tab_id) != label:
                self._labels[tab_id] = label
                self.get_tab(tab_id).label = label

    @on(TabbedContent.TabActivated)
    def catch_up_view(self, event: TabbedContent.TabActivated) -> None:
        if event.tabbed_content is not self:
            return
        view = self.view(event.pane.id or self.tabs[0].id)
        self._catch_up(view)
        view.focus_main()

    def _catch_up(self, view: View) -> None:
        """Show the newest observation in a view that was hidden when it came."""
        if view.stale and self.observation is not None:
            view.show(self.observation)

    def _caught_up(self, view_id: str, kind: type[_V]) -> _V:
        """The view `view_id` (of type `kind`), brought up to the newest observation."""
        view = self.view(view_id)
        assert isinstance(view, kind)
        self._catch_up(view)
        return view

    # --- navigation ----------------------------------------------------------------------

    def show_view(self, view_id: str) -> None:
        if all(tab.id != view_id for tab in self.tabs):
            return
        if self.active != view_id:
            self._previous = self.active
            self.active = view_id

    def previous_view(self) -> None:
        if self._previous is not None:
            self.show_view(self._previous)

    def open_task(self, task_id: int) -> None:
        self._caught_up("task", TaskDetailView).show_task(task_id)
        self.show_view("task")

    def open_request(self, request_id: int) -> None:
        self.show_view("requests")
        self._caught_up("requests", RequestsView).show_request(request_id)

    def open_thread(self, thread_id: int) -> None:
        self.show_view("threads")
        self._caught_up("threads", ThreadsView).show_thread(thread_id)

    @on(OpenTask)
    def open_task_asked(self, message: OpenTask) -> None:
        message.stop()
        self.open_task(message.task_id)

    @on(OpenRequest)
    def open_request_asked(self, message: OpenRequest) -> None:
        message.stop()
        self.open_request(message.request_id)

    @on(OpenThread)
    def open_thread_asked(self, message: OpenThread) -> None:
        message.stop()
        self.open_thread(message.thread_id)

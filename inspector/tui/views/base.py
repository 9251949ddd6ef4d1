"""Provides View, the base of the tabs: capability checks and lazy refresh.

Views get what they need from above (each observation through `show`, configuration through
their constructor, live state through reactives the app binds with `data_bind`) and ask for
anything beyond themselves with messages (`inspector.tui.messages`); they never call the app.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import var
from textual.widgets import Input, Static

from inspector.model import Capability, Frame
from inspector.tui.poller import Observation
from inspector.tui.widgets.filter_bar import FilterBar
from inspector.tui.widgets.live_table import LiveTable

WITHOUT_AGENT = (
    "Start the server with [b]inspector run app:app[/b], or wrap the app with "
    "[b]inspector.agent.instrument(app)[/b], to see them."
)
WAITING_FOR_LOOP = (
    "The agent was injected while the loop was blocked: its probes install as soon as the "
    "loop runs again."
)
LIFECYCLE_OFF = (
    "It was started with [b]--no-lifecycle[/b], or a probe failed to install "
    "([b]inspector dump[/b] lists the agent's own errors)."
)


class View(Vertical):
    """One tab. The app pushes each new observation down with `show()`; hidden views are only
    marked stale and catch up when they become visible, so an update costs the visible view.

    A view with `filter_placeholder` gets the `/` filter: a `FilterBar` above its body that
    filters its tables (`LiveTable.set_filter`), or what `apply_filter` says."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    requires: ClassVar[tuple[Capability, ...]] = ()
    """Capabilities without which the view has nothing to show."""
    missing_text: ClassVar[str] = ""
    """What the view would show, for the "needs the agent" notice."""
    filter_placeholder: ClassVar[str] = ""
    """What `/` searches, shown in the empty filter; no filter when empty."""

    all_frames: var[bool] = var(False, init=False)
    """Show every frame of stacks and tracebacks (`f`), not only the application's; bound to
    the app's state by the views that show stacks."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.observation: Observation | None = None
        self.stale = True

    def compose(self) -> ComposeResult:
        yield Static("", classes="capability-notice")
        if self.filter_placeholder:
            yield self.make_filter_bar()
        yield from self.compose_body()

    def make_filter_bar(self) -> FilterBar:
        return FilterBar(f"filter: {self.filter_placeholder}  (/)")

    def compose_body(self) -> ComposeResult:
        yield from ()

    def show(self, observation: Observation) -> None:
        """Render `observation`, the newest the app has. The app calls it on the view on screen
        (and on one it is about to show); the others are marked `stale` and catch up when shown."""
        self.observation = observation
        self.stale = False
        missing = [c for c in self.requires if c not in observation.snapshot.capabilities]
        notice = self.query_one(".capability-notice", Static)
        if missing:
            source = observation.snapshot.source
            what = f"[b]{self.missing_text or 'This view'}[/b]"
            waiting = observation.snapshot.health.waiting_for_loop
            if observation.snapshot.by_agent and all(c in waiting for c in missing):
                notice.update(
                    f"{what}: not tracked yet ({', '.join(missing)}).\n{WAITING_FOR_LOOP}"
                )
            elif observation.snapshot.by_agent:
                notice.update(
                    f"{what}: this server's agent does not track {', '.join(missing)}.\n"
                    f"{LIFECYCLE_OFF}"
                )
            else:
                who = "a plain aiomonitor" if source == "aiomonitor" else "this source"
                notice.update(
                    f"{what} need the inspector agent: {who} does not report "
                    f"{', '.join(missing)}.\n{WITHOUT_AGENT}"
                )
        self.set_class(bool(missing), "-missing")
        if not missing:
            self.update_view(observation)
            self.update_filter_summary()

    def update_view(self, observation: Observation) -> None:
        """Subclasses render here."""

    def watch_all_frames(self) -> None:
        self.refresh_frames()

    def refresh_frames(self) -> None:
        """Views that show stacks redraw them folded or whole (`all_frames`)."""

    def current_location(self) -> Frame | None:
        """The source line under the cursor, for `c` (copy) and `e` (open in the editor)."""
        return None

    def selected_task_id(self) -> int | None:
        """The task under the cursor, for `x` (cancel)."""
        return None

    def focus_main(self) -> None:
        """Give focus to the view's main widget when the tab is shown."""

    # --- the `/` filter ------------------------------------------------------------------

    @property
    def filter_bar(self) -> FilterBar | None:
        bars = self.query(FilterBar)
        return bars.first() if bars else None

    @property
    def filter_text(self) -> str:
        bar = self.filter_bar
        return bar.value.strip() if bar is not None else ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_filter":
            return self.filter_bar is not None
        return True

    def action_focus_filter(self) -> None:
        bar = self.filter_bar
        if bar is None:
            raise SkipAction()
        bar.open()

    def action_clear_filter(self) -> None:
        """esc: empty the filter and go back to the list; with nothing to clear, esc goes on
        to the app (back to the previous view)."""
        bar = self.filter_bar
        if bar is None or not (bar.value or bar.input.has_focus):
            raise SkipAction()
        bar.clear()
        self.focus_main()

    def set_filter(self, text: str) -> None:
        """Filter as if `text` had been typed after `/`."""
        bar = self.filter_bar
        if bar is not None:
            bar.input.value = text
        self.apply_filter(text.strip())

    @on(Input.Changed, "FilterInput")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.apply_filter(event.value.strip())

    @on(Input.Submitted, "FilterInput")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_main()

    def apply_filter(self, text: str) -> None:
        """Filter every table of the view; say how many rows match."""
        tables = list(self.query(LiveTable))
        for table in tables:
            table.set_filter(text)
        self.update_filter_summary()

    def update_filter_summary(self) -> None:
        bar = self.filter_bar
        if bar is None:
            return
        tables = list(self.query(LiveTable))
        shown = sum(table.row_count for table in tables)
        total = sum(table.total_count for table in tables)
        bar.summary = f"{shown:,} of {total:,} rows" if self.filter_text else ""

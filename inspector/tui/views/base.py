"""Provides View, the base of the tabs: capability checks and lazy refresh.

Views get what they need from above (each observation through `show`, configuration through
their constructor, live state through reactives the app binds with `data_bind`) and ask for
anything beyond themselves with messages (`inspector.tui.messages`); they never call the app.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from inspector.model import Capability, Frame
from inspector.tui.poller import Observation

WITHOUT_AGENT = (
    "Start the server with [b]inspector run app:app[/b], or wrap the app with "
    "[b]inspector.agent.instrument(app)[/b], to see them."
)
LIFECYCLE_OFF = (
    "It was started with [b]--no-lifecycle[/b], or a probe failed to install "
    "([b]inspector dump[/b] lists the agent's own errors)."
)


class View(Vertical):
    """One tab. The app pushes each new observation down with `show()`; hidden views are only
    marked stale and catch up when they become visible, so an update costs the visible view."""

    requires: ClassVar[tuple[Capability, ...]] = ()
    """Capabilities without which the view has nothing to show."""
    missing_text: ClassVar[str] = ""
    """What the view would show, for the "needs the agent" notice."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.observation: Observation | None = None
        self.stale = True

    def compose(self) -> ComposeResult:
        yield Static("", classes="capability-notice")
        yield from self.compose_body()

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
            if observation.snapshot.by_agent:
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

    def update_view(self, observation: Observation) -> None:
        """Subclasses render here."""

    def current_location(self) -> Frame | None:
        """The source line under the cursor, for `c` (copy location)."""
        return None

    def selected_task_id(self) -> int | None:
        """The task under the cursor, for `x` (cancel)."""
        return None

    def focus_main(self) -> None:
        """Give focus to the view's main widget when the tab is shown."""

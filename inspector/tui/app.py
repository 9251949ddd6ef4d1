"""Provides InspectorApp, the live terminal UI, and `make_app`, the factory the CLI and tests share.

Data flow: a `Poller` on a worker thread fetches snapshots and posts `SnapshotReceived`; a newer
one replaces one not yet applied. The handlers set the app's reactive state (the observation,
the connection, the shown worker) inside one `batch_update`. The header, the banners, the Task
view and the Workers view are bound to that state with `data_bind` and redraw themselves; a
watcher hands the observation to the view on screen and counts it in the tab labels, and hidden
views catch up when shown. Views ask for anything beyond themselves with messages
(`messages.py`). What to do as workers come and go is decided in `switcher.py`; the command
palette's commands are in `palette.py`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import ClassVar, Final

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.widgets import TabPane

from inspector.client.source import Source
from inspector.model import Frame, Snapshot
from inspector.protocol import Hello, Result
from inspector.tui import formatting
from inspector.tui.connection import ConnectionState, age_of_data, why_not_cancel
from inspector.tui.content import printable
from inspector.tui.editor import EditorError, open_command
from inspector.tui.messages import (
    CopyLocation,
    OpenInEditor,
    SnapshotReceived,
    SourceConnected,
    SourceDisconnected,
    SwitchWorker,
    VitalsSampled,
    WorkersUpdated,
    poll_message,
)
from inspector.tui.palette import InspectorCommands
from inspector.tui.poller import (
    Clock,
    Diagnose,
    Observation,
    Poller,
)
from inspector.tui.saving import save_snapshot
from inspector.tui.screens.confirm import confirm_cancel
from inspector.tui.screens.help import HelpScreen
from inspector.tui.switcher import Notice, WorkerRoster
from inspector.tui.tabs import TABS, WORKERS_TAB, Tab
from inspector.tui.views.background import BackgroundView
from inspector.tui.views.base import View
from inspector.tui.views.exceptions import ExceptionsView
from inspector.tui.views.findings import FindingsView
from inspector.tui.views.requests import RequestsView
from inspector.tui.views.stalls import StallsView
from inspector.tui.views.task_detail import TaskDetailView
from inspector.tui.views.tasks import TasksView
from inspector.tui.views.threads import ThreadsView
from inspector.tui.views.view_tabs import ViewTabs
from inspector.tui.views.workers import WorkersView
from inspector.tui.vitals import Vitals, VitalsFactory, VitalsHistory, local_vitals
from inspector.tui.widgets.banners import ConnectionBanner, StallBanner
from inspector.tui.widgets.footer import InspectorFooter
from inspector.tui.widgets.header import TargetHeader
from inspector.tui.workers import FleetPoller, Worker, WorkerGroup

INTERVALS: Final = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
"""The refresh intervals + and - step through."""


class InspectorApp(App[int]):
    """The live view of one target. `source` is any `inspector.client.source.Source`."""

    CSS_PATH = "inspector.tcss"
    TITLE = "uvicorn-inspector"
    COMMANDS = App.COMMANDS | {InspectorCommands}
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (100, "-normal"),
        (160, "-wide"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(number), f"show_view('{tab.id}')", tab.title, show=False)
            for number, tab in enumerate(TABS, start=1)
        ),
        Binding("9", "show_view('workers')", WORKERS_TAB.title, show=False),
        Binding("w", "next_worker", "Next worker"),
        Binding("W", "previous_worker", "Previous worker", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("plus", "slower", "Slower", show=False),
        Binding("minus", "faster", "Faster", show=False),
        Binding("s", "save", "Save"),
        Binding("c", "copy_location", "Copy file:line"),
        Binding("e", "open_in_editor", "Editor", show=False),
        Binding("f", "toggle_frames", "All frames", show=False),
        Binding("x", "cancel_task", "Cancel task", show=False),
        Binding("escape", "previous_view", "Back", show=False),
        Binding("q", "quit", "Quit"),
    ]

    # The state the screen shows. Set only on the UI thread; what depends on it follows by
    # itself (watchers here, `data_bind` in the widgets).
    connection: var[ConnectionState] = var("connecting", init=False)
    """connecting, then live ⇄ paused; disconnected while the poller retries; failed once
    retrying cannot help (the poller stopped); offline for a saved snapshot."""
    observation: var[Observation | None] = var(None, init=False)
    """The newest snapshot with its findings and event history; None until the first."""
    hello: var[Hello | None] = var(None, init=False)
    """The target's introduction at the last connect."""
    disconnect_reason: var[str | None] = var(None, init=False)
    """Why the target is away (one line from the client), None while it is not."""
    retry_in: var[float | None] = var(None, init=False)
    """Seconds until the poller's next attempt; None when it will not try."""
    paused: var[bool] = var(False, init=False)
    """Polling stopped by the user (p); the screen keeps its data."""
    interval: var[float] = var(1.0, init=False)
    """Seconds between snapshots (+ and - change it)."""
    now: var[float] = var(0.0, init=False)
    """The client clock at the last tick or snapshot: the data's age counts up from it."""
    address: var[str] = var("", init=False)
    """The shown target's address (another worker's after a switch)."""
    roster: var[WorkerRoster | None] = var(None, init=False)
    """The parent's workers and the one shown; None unless attached to a worker group."""
    data_age: var[float | None] = var(None, init=False)
    """Seconds since the data on screen was fetched (a saved file: since it was taken)."""
    cancel_unavailable: var[str | None] = var(None, init=False)
    """Why a task cannot be cancelled now; None when it can."""
    worker_label: var[str | None] = var(None, init=False)
    """ "worker 2/4 (pid 4242)" in a worker group, None otherwise."""
    all_frames: var[bool] = var(False, init=False)
    """Stacks and tracebacks show every frame (f), not only the application's with each run
    of library frames folded into one line."""

    def __init__(
        self,
        source: Source,
        *,
        clock: Clock = time.time,
        interval: float = 1.0,
        stuck_after: float = 5.0,
        diagnose: Diagnose | None = None,
        vitals: VitalsFactory | None = local_vitals,
        group: WorkerGroup | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.clock = clock
        self.stuck_after = stuck_after
        self._diagnose = diagnose
        self.group = group
        """The parent's workers when attached to one: enables the switcher and the Workers tab."""
        self.tabs: tuple[Tab, ...] = (*TABS, WORKERS_TAB) if group else TABS
        # Set without watchers: nothing is on screen yet.
        self.set_reactive(InspectorApp.connection, "connecting" if source.live else "offline")
        self.set_reactive(InspectorApp.interval, interval)
        self.set_reactive(InspectorApp.address, source.address)
        if group is not None:
            self.set_reactive(InspectorApp.roster, WorkerRoster.start(group, source.address))
        self.poller = self._make_poller(source)
        self.fleet: FleetPoller | None = (
            FleetPoller(
                group.discover,
                emit=lambda statuses: self.post_message(WorkersUpdated(statuses)),
                source_factory=group.source_factory,
                interval=group.interval,
                stuck_after=stuck_after,
                diagnose=diagnose,
                vitals=vitals,
            )
            if group
            else None
        )
        self.vitals_history = VitalsHistory(vitals, live=source.live)
        self.apply_seconds: deque[float] = deque(maxlen=1000)
        """How long each snapshot took to apply to the screen (for the benchmark)."""
        self.last_result: Result | None = None
        self.saved_paths: list[Path] = []

    # --- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        app = InspectorApp
        yield TargetHeader(id="header").data_bind(
            app.connection,
            app.address,
            app.observation,
            app.data_age,
            app.interval,
            app.worker_label,
        )
        yield StallBanner("", id="stall-banner").data_bind(
            app.observation, app.connection, app.data_age
        )
        yield ConnectionBanner("", id="connection-banner").data_bind(
            app.connection, app.disconnect_reason, app.retry_in, app.data_age
        )
        views = self._make_views()
        with ViewTabs(self.tabs, id="views").data_bind(app.observation, app.roster):
            for number, tab in enumerate(self.tabs, start=1):
                with TabPane(f"{number} {tab.title}", id=tab.id):
                    yield views[tab.id]
        yield InspectorFooter()

    def _make_views(self) -> dict[str, View]:
        """Each view with what it needs handed down: settings as arguments, state bound."""
        app = InspectorApp
        views: dict[str, View] = {
            "findings": FindingsView(id="findings-view"),
            "tasks": TasksView(id="tasks-view"),
            "task": TaskDetailView(id="task-view").data_bind(
                app.cancel_unavailable, app.all_frames
            ),
            "requests": RequestsView(stuck_after=self.stuck_after, id="requests-view"),
            "background": BackgroundView(id="background-view").data_bind(app.all_frames),
            "threads": ThreadsView(id="threads-view").data_bind(app.all_frames),
            "stalls": StallsView(id="stalls-view").data_bind(app.all_frames),
            "exceptions": ExceptionsView(id="exceptions-view").data_bind(app.all_frames),
        }
        if self.roster is not None:
            views["workers"] = WorkersView(id="workers-view").data_bind(InspectorApp.roster)
        return views

    def on_mount(self) -> None:
        # Kept as references: app-level queries search the active screen, which is a dialog
        # while one is open (and nothing while the app shuts down).
        self._header = self.query_one(TargetHeader)
        self._tabs = self.query_one(ViewTabs)
        self.now = self.clock()
        self._run_poller()
        if self.fleet is not None:
            self._run_fleet()
        self.set_interval(1.0, self._tick)
        if self.vitals_history.enabled:
            self.set_interval(1.0, self._sample_vitals)
        else:
            self.record_vitals(None)

    def on_unmount(self) -> None:
        # The pollers' threads must end, or the interpreter waits for them at exit.
        self.poller.stop()
        if self.fleet is not None:
            self.fleet.stop()

    @property
    def views(self) -> ViewTabs:
        return self._tabs

    @property
    def active_view(self) -> View:
        return self._tabs.active_view

    def _ui_ready(self) -> bool:
        """False before mount and once shutting down: late messages from threads are dropped."""
        return hasattr(self, "_header") and self.is_running

    # --- derived state -------------------------------------------------------------------

    def compute_data_age(self) -> float | None:
        return age_of_data(self.observation, self.now, live=self.source.live)

    def compute_cancel_unavailable(self) -> str | None:
        return self.cancel_refusal()

    def compute_worker_label(self) -> str | None:
        return self.roster.label() if self.roster is not None else None

    def cancel_refusal(self) -> str | None:
        """Why a task cannot be cancelled now, or None when it can."""
        return why_not_cancel(
            live=self.source.live,
            connection=self.connection,
            observation=self.observation,
            hello=self.hello,
        )

    # --- watchers ------------------------------------------------------------------------

    def watch_paused(self, paused: bool) -> None:
        if paused:
            self.poller.pause()
        else:
            self.poller.resume()
        if self.connection in ("live", "paused"):
            self.connection = "paused" if paused else "live"

    def watch_interval(self, interval: float) -> None:
        self.poller.set_interval(interval)

    def _tick(self) -> None:
        self.now = self.clock()

    # --- data in ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="source", exit_on_error=False)
    def _run_poller(self) -> None:
        self.poller.run()

    def _make_poller(self, source: Source) -> Poller:
        return Poller(
            source,
            emit=lambda event: self.post_message(poll_message(event, source)),
            interval=self.interval,
            stuck_after=self.stuck_after,
            clock=self.clock,
            diagnose=self._diagnose,
        )

    def _is_current(self, origin: object) -> bool:
        """False for news from the source of a worker the user switched away from."""
        return origin is None or origin is self.source

    @on(SnapshotReceived)
    def apply_snapshot(self, message: SnapshotReceived) -> None:
        if not self._ui_ready() or not self._is_current(message.origin):
            return
        if self.paused and self.observation is not None:
            return  # a fetch that was in flight when the user paused
        started = time.perf_counter()
        observation = message.observation
        previous = self.observation
        if (
            previous is not None
            and previous.snapshot.process.pid != observation.snapshot.process.pid
        ):
            self.vitals_history.forget()  # a restarted worker: its curves start over
        formatting.set_project_root(observation.snapshot.process.cwd)
        with self.batch_update():
            if self.source.live:
                self.connection = "paused" if self.paused else "live"
            self.disconnect_reason = None
            self.now = self.clock()
            self.observation = observation
        self.apply_seconds.append(time.perf_counter() - started)

    @on(SourceConnected)
    def note_connected(self, message: SourceConnected) -> None:
        if not self._ui_ready() or not self._is_current(message.origin):
            return
        self.hello = message.hello
        if self.connection in ("connecting", "disconnected"):
            self.connection = "live" if self.source.live else "offline"
        if self.disconnect_reason is not None:
            self.notify(f"Reconnected to pid {message.hello.process.pid}.", title="Live again")
        self.disconnect_reason = None

    @on(SourceDisconnected)
    def note_disconnected(self, message: SourceDisconnected) -> None:
        if not self._ui_ready() or not self._is_current(message.origin):
            return
        with self.batch_update():
            self.retry_in = message.retry_in
            self.disconnect_reason = message.reason
            self.connection = "disconnected" if message.retryable else "failed"
        if self.fleet is not None:
            self.fleet.wake()  # the worker may be gone for good: look for the live ones now

    @work(thread=True, exclusive=True, group="vitals", exit_on_error=False)
    def _sample_vitals(self) -> None:
        """psutil reads take milliseconds (connections scan /proc): never on the UI thread."""
        observation = self.observation
        if self.poller.paused or observation is None:
            return
        process = observation.snapshot.process
        self.post_message(VitalsSampled(self.vitals_history.sample(self.source.address, process)))

    @on(VitalsSampled)
    def show_vitals(self, message: VitalsSampled) -> None:
        if self._ui_ready():
            self.record_vitals(message.vitals)

    def record_vitals(self, vitals: Vitals | None) -> None:
        history = self.vitals_history
        history.record(vitals)
        self._header.show_vitals(vitals, history.cpu, history.rss, history.reason)

    # --- navigation (the tabs do it; these are for keys, the palette and the tests) -------

    def action_show_view(self, view_id: str) -> None:
        self._tabs.show_view(view_id)

    def action_previous_view(self) -> None:
        self._tabs.previous_view()

    def action_open_task(self, task_id: int) -> None:
        self._tabs.open_task(task_id)

    def action_open_request(self, request_id: int) -> None:
        self._tabs.open_request(request_id)

    def action_open_thread(self, thread_id: int) -> None:
        self._tabs.open_thread(thread_id)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # --- workers ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="fleet", exit_on_error=False)
    def _run_fleet(self) -> None:
        assert self.fleet is not None
        self.fleet.run()

    @on(WorkersUpdated)
    def follow_workers(self, message: WorkersUpdated) -> None:
        """Take the fleet's news; leave a worker that is gone for the one `switcher` picks."""
        if not self._ui_ready() or self.roster is None:
            return
        self.roster, follow = self.roster.follow(message.statuses)
        if follow.switch_to is not None:
            self.switch_to_worker(follow.switch_to, quiet=follow.notice is not None)
        if follow.notice is not None:
            self._tell(follow.notice)

    def switch_to_worker(self, worker: Worker, *, quiet: bool = False) -> None:
        """Point the main views at `worker`: a new source and poller; the old ones stop."""
        roster = self.roster
        if roster is None or self.group is None:
            return
        if roster.current is not None and worker.pid == roster.current.pid:
            return
        self.poller.stop()
        self.source = self.group.source_factory(worker.address)
        self.poller = self._make_poller(self.source)
        if self.paused:
            self.poller.pause()
        self.vitals_history.forget(reader=True)
        with self.batch_update():
            self.roster = roster = roster.showing(worker)
            self.address = self.source.address
            self.hello = None
            self.disconnect_reason = None
            self.connection = "connecting"
            self.observation = None
        self._run_poller()
        if not quiet:
            self.notify(f"Showing {roster.label()}.", markup=False)

    @on(SwitchWorker)
    def switch_on_request(self, message: SwitchWorker) -> None:
        worker = self.roster.find(message.pid) if self.roster is not None else None
        if worker is None:
            self.notify(f"Worker pid {message.pid} is gone.", severity="warning")
            return
        self.switch_to_worker(worker)
        self.action_show_view("findings")

    def _step_worker(self, step: int) -> None:
        if self.roster is None:
            return
        target = self.roster.step(step)
        if isinstance(target, Notice):
            self._tell(target)
        else:
            self.switch_to_worker(target)

    def action_next_worker(self) -> None:
        self._step_worker(1)

    def action_previous_worker(self) -> None:
        self._step_worker(-1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The worker keys exist only when attached to a parent with workers."""
        if action in ("next_worker", "previous_worker"):
            return self.group is not None
        if action == "show_view" and parameters == ("workers",):
            return self.group is not None
        return True

    def _tell(self, notice: Notice) -> None:
        self.notify(
            printable(notice.message), title=notice.title, severity=notice.severity, markup=False
        )

    # --- polling control -------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        if not self.source.live:
            self.notify("A saved snapshot does not change: nothing to pause.")
            return
        self.paused = not self.paused
        if self.paused:
            self.notify("Paused: the screen keeps the data it has. Press p to resume.")
        else:
            self.notify("Resumed.")

    def _step_interval(self, step: int) -> None:
        index = min(range(len(INTERVALS)), key=lambda i: abs(INTERVALS[i] - self.interval))
        self.interval = INTERVALS[max(0, min(len(INTERVALS) - 1, index + step))]
        self.notify(f"Refreshing every {formatting.duration(self.interval)}.")

    def action_slower(self) -> None:
        self._step_interval(1)

    def action_faster(self) -> None:
        self._step_interval(-1)

    # --- actions on data -------------------------------------------------------------------

    def action_save(self) -> None:
        if self.observation is None:
            self.notify("Nothing to save yet.", severity="warning")
            return
        self._save(self.observation.snapshot, Path.cwd())

    @work(thread=True, group="save", exit_on_error=False)
    def _save(self, snapshot: Snapshot, directory: Path) -> None:
        """Writing 10,000 tasks is ~6 MB of JSON: off the UI thread."""
        try:
            path = save_snapshot(snapshot, directory)
        except OSError as error:
            self.call_from_thread(
                self.notify, printable(f"Could not save: {error}"), severity="error", markup=False
            )
            return
        self.saved_paths.append(path)
        self.call_from_thread(
            self.notify, printable(f"Saved {path}"), title="Snapshot saved", markup=False
        )

    def action_copy_location(self) -> None:
        self._copy(self.active_view.current_location())

    @on(CopyLocation)
    def copy_location(self, message: CopyLocation) -> None:
        self._copy(message.frame)

    def _copy(self, frame: Frame | None) -> None:
        if frame is None:
            self.notify("No source line under the cursor here.", severity="warning")
            return
        # Escaped like everything shown: a file name with a newline or an escape sequence would
        # otherwise run in the shell it is pasted into.
        text = printable(formatting.full_location(frame))
        self.copy_to_clipboard(text)
        self.notify(f"Copied {text}", markup=False)

    def action_toggle_frames(self) -> None:
        self.all_frames = not self.all_frames
        if self.all_frames:
            self.notify("Showing every frame. f folds library frames again.")
        else:
            self.notify("Library frames folded: your code stands out. f shows them all.")

    def action_open_in_editor(self) -> None:
        self._edit(self.active_view.current_location())

    @on(OpenInEditor)
    def open_in_editor(self, message: OpenInEditor) -> None:
        self._edit(message.frame)

    def _edit(self, frame: Frame | None) -> None:
        """Hand the terminal to $VISUAL / $EDITOR at the frame's line, and take it back after."""
        if frame is None:
            self.notify("No source line under the cursor here.", severity="warning")
            return
        try:
            cwd = self.observation.snapshot.process.cwd if self.observation else None
            argv = open_command(frame.file, frame.line, os.environ, cwd=cwd)
        except EditorError as error:
            self.notify(printable(str(error)), severity="warning", markup=False)
            return
        if self._driver is not None and self._driver.is_web:
            self.notify("A browser session cannot hand its terminal to an editor.")
            return
        try:
            if self._driver is not None and self._driver.can_suspend:
                with self.suspend():
                    status = subprocess.run(argv, check=False).returncode
            else:  # headless: no terminal to hand over
                status = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL).returncode
        except OSError as error:
            self.notify(
                printable(f"Could not run {argv[0]}: {error.strerror or error}"),
                severity="error",
                markup=False,
            )
            return
        if status != 0:
            self.notify(
                printable(f"{argv[0]} exited with status {status}."),
                severity="warning",
                markup=False,
            )

    def action_cancel_task(self) -> None:
        task_id = self.active_view.selected_task_id()
        observation = self.observation
        if task_id is None or observation is None:
            self.notify("Select a task first (Tasks: 2).", severity="warning")
            return
        refusal = self.cancel_refusal()
        if refusal is not None:
            self.notify(
                f"Cannot cancel: {refusal}.", severity="error", title="Refused", markup=False
            )
            return
        task = observation.task(task_id)
        if task is None:
            self.notify("That task is gone.", severity="warning")
            return

        def answer(confirmed: bool | None) -> None:
            if confirmed:
                self._cancel(task_id)

        self.push_screen(confirm_cancel(task), answer)

    @work(group="actions", exit_on_error=False)
    async def _cancel(self, task_id: int) -> None:
        result = await asyncio.wrap_future(self.poller.cancel_task(task_id))
        self.last_result = result
        # The message is the agent's: text from the target.
        if result.ok:
            message = printable(result.message or f"Task #{task_id} cancelled.")
            self.notify(message, title="Cancelled", markup=False)
        else:
            message = printable(result.message or "The target refused.")
            self.notify(message, title="Not cancelled", severity="error", markup=False)
        self.poller.wake()


def make_app(
    source: Source,
    *,
    clock: Clock = time.time,
    interval: float = 1.0,
    stuck_after: float = 5.0,
    diagnose: Diagnose | None = None,
    vitals: VitalsFactory | None = local_vitals,
    group: WorkerGroup | None = None,
) -> InspectorApp:
    """The app, wired to `source`. Tests inject a frozen `clock`, fixed `diagnose` and `vitals`."""
    return InspectorApp(
        source,
        clock=clock,
        interval=interval,
        stuck_after=stuck_after,
        diagnose=diagnose,
        vitals=vitals,
        group=group,
    )

"""Provides InspectorApp, the live terminal UI, and `make_app`, the factory the CLI and tests share.

Data flow: a `Poller` on a worker thread fetches snapshots and posts `SnapshotReceived`; a newer
one replaces one not yet applied. The handler pushes the observation down to the header, the
banners and the visible view inside one `batch_update`; hidden views catch up when shown.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from inspector import protocol
from inspector.client.source import Source
from inspector.model import Snapshot
from inspector.protocol import Hello, Result
from inspector.tui import formatting
from inspector.tui.content import palette_text, printable
from inspector.tui.messages import (
    OpenRequest,
    OpenTask,
    OpenThread,
    SnapshotReceived,
    SourceConnected,
    SourceDisconnected,
    SwitchWorker,
    VitalsSampled,
    WorkersUpdated,
)
from inspector.tui.poller import (
    Clock,
    Connected,
    Diagnose,
    Disconnected,
    Fetched,
    Observation,
    Poller,
    PollEvent,
)
from inspector.tui.screens.confirm import ConfirmScreen
from inspector.tui.screens.help import HelpScreen
from inspector.tui.views.background import BackgroundView
from inspector.tui.views.base import View
from inspector.tui.views.exceptions import ExceptionsView
from inspector.tui.views.findings import FindingsView
from inspector.tui.views.requests import RequestsView
from inspector.tui.views.stalls import StallsView
from inspector.tui.views.task_detail import TaskDetailView
from inspector.tui.views.tasks import TasksView
from inspector.tui.views.threads import ThreadsView
from inspector.tui.views.workers import WorkersView
from inspector.tui.vitals import Vitals, VitalsFactory, VitalsReader, local_vitals
from inspector.tui.widgets.banners import ConnectionBanner, StallBanner
from inspector.tui.widgets.header import ConnectionState, TargetHeader
from inspector.tui.workers import FleetPoller, Worker, WorkerGroup, WorkerStatus

SHORT_TITLES: Final = {
    "findings": "Find",
    "requests": "Req",
    "background": "Bg",
    "threads": "Thr",
    "exceptions": "Exc",
    "workers": "Wrk",
}
"""Tab titles below 100 columns, so all eight tabs fit in 80."""
VIEWS: Final = (
    ("findings", "Findings", FindingsView),
    ("tasks", "Tasks", TasksView),
    ("task", "Task", TaskDetailView),
    ("requests", "Requests", RequestsView),
    ("background", "Background", BackgroundView),
    ("threads", "Threads", ThreadsView),
    ("stalls", "Stalls", StallsView),
    ("exceptions", "Exceptions", ExceptionsView),
)
WORKERS_VIEW: Final = ("workers", "Workers", WorkersView)
"""The ninth tab, present only when attached to a parent with workers."""
INTERVALS: Final = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
HISTORY_POINTS: Final = 60
"""Samples kept for the CPU and RSS sparklines (a minute at the default interval)."""

_V = TypeVar("_V", bound=View)


class InspectorApp(App[int]):
    """The live view of one target. `source` is any `inspector.client.source.Source`."""

    CSS_PATH = "inspector.tcss"
    TITLE = "uvicorn-inspector"
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (100, "-normal"),
        (160, "-wide"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(number), f"show_view('{view_id}')", title, show=False)
            for number, (view_id, title, _view) in enumerate(VIEWS, start=1)
        ),
        Binding("9", "show_view('workers')", "Workers", show=False),
        Binding("w", "next_worker", "Next worker"),
        Binding("W", "previous_worker", "Previous worker", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("plus", "slower", "Slower", show=False),
        Binding("minus", "faster", "Faster", show=False),
        Binding("s", "save", "Save"),
        Binding("c", "copy_location", "Copy file:line"),
        Binding("x", "cancel_task", "Cancel task", show=False),
        Binding("escape", "previous_view", "Back", show=False),
        Binding("q", "quit", "Quit"),
    ]

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
        self.poller = self._make_poller(source, interval)
        self.group = group
        """The parent's workers when attached to one: enables the switcher and the Workers tab."""
        self.group_workers: list[Worker] = list(group.initial) if group else []
        self.worker_statuses: list[WorkerStatus] = []
        self.current_worker: Worker | None = next(
            (w for w in self.group_workers if w.address == source.address), None
        )
        self.fleet: FleetPoller | None = (
            FleetPoller(
                group.discover,
                emit=self._emit_workers,
                source_factory=group.source_factory,
                interval=group.interval,
                stuck_after=stuck_after,
                diagnose=diagnose,
                vitals=vitals,
            )
            if group
            else None
        )
        self._view_specs = (*VIEWS, WORKERS_VIEW) if group else VIEWS
        self.observation: Observation | None = None
        self.hello: Hello | None = None
        self.connection: ConnectionState = "connecting" if source.live else "offline"
        self.disconnect_reason: str | None = None
        self.retry_in: float | None = None
        self.apply_seconds: deque[float] = deque(maxlen=1000)
        """How long each snapshot took to apply to the screen (for the benchmark)."""
        self.last_result: Result | None = None
        self.saved_paths: list[Path] = []
        self._vitals_factory = vitals
        self._vitals_reader: VitalsReader | None = None
        self._vitals_reason = "waiting" if vitals is not None else "off"
        self._cpu: deque[float] = deque(maxlen=HISTORY_POINTS)
        self._rss: deque[float] = deque(maxlen=HISTORY_POINTS)
        self._tab_labels: dict[str, str] = {}
        self._previous_view: str | None = None

    # --- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TargetHeader(id="header")
        yield StallBanner("", id="stall-banner")
        yield ConnectionBanner("", id="connection-banner")
        with TabbedContent(initial="findings", id="views"):
            for number, (view_id, title, view_class) in enumerate(self._view_specs, start=1):
                with TabPane(f"{number} {title}", id=view_id):
                    yield view_class(id=f"{view_id}-view")
        yield Footer()

    def on_mount(self) -> None:
        # Kept as references: app-level queries search the active screen, which is a dialog
        # while one is open (and nothing while the app shuts down).
        self._header = self.query_one(TargetHeader)
        self._stall_banner = self.query_one(StallBanner)
        self._connection_banner = self.query_one(ConnectionBanner)
        self._tabs = self.query_one("#views", TabbedContent)
        self._views = {
            view_id: self.query_one(f"#{view_id}-view", View)
            for view_id, _t, _v in self._view_specs
        }
        self._stall_banner.display = False
        self._connection_banner.display = False
        self._refresh_header()
        self._refresh_tab_labels()
        self._run_poller()
        if self.fleet is not None:
            self._run_fleet()
        self.set_interval(1.0, self._tick)
        if self._vitals_factory is not None and self.source.live:
            self.set_interval(1.0, self._sample_vitals)
        else:
            self._vitals_reason = "off" if self.source.live else "not read from a saved snapshot"
            self.record_vitals(None)

    def on_unmount(self) -> None:
        # The poller's thread must end, or the interpreter waits for it at exit.
        self.poller.stop()
        if self.fleet is not None:
            self.fleet.stop()

    @property
    def views(self) -> TabbedContent:
        return self._tabs

    @property
    def active_view(self) -> View:
        return self._views[self._tabs.active or "findings"]

    def view(self, view_id: str) -> View:
        return self._views[view_id]

    # --- data in ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="source", exit_on_error=False)
    def _run_poller(self) -> None:
        self.poller.run()

    def _make_poller(self, source: Source, interval: float) -> Poller:
        return Poller(
            source,
            emit=lambda event: self._emit(event, source),
            interval=interval,
            stuck_after=self.stuck_after,
            clock=self.clock,
            diagnose=self._diagnose,
        )

    def _emit(self, event: PollEvent, origin: Source | None = None) -> None:
        """Called on the poller's thread; `post_message` is thread-safe."""
        if isinstance(event, Fetched):
            self.post_message(SnapshotReceived(event.observation, origin))
        elif isinstance(event, Connected):
            self.post_message(SourceConnected(event.hello, origin))
        elif isinstance(event, Disconnected):
            self.post_message(
                SourceDisconnected(event.reason, event.retry_in, event.ever_connected, origin)
            )

    def _is_current(self, origin: object) -> bool:
        """False for news from the source of a worker the user switched away from."""
        return origin is None or origin is self.source

    @on(SnapshotReceived)
    def apply_snapshot(self, message: SnapshotReceived) -> None:
        if not self._ui_ready() or not self._is_current(message.origin):
            return
        if self.poller.paused and self.observation is not None:
            return  # a fetch that was in flight when the user paused
        started = time.perf_counter()
        previous = self.observation
        if (
            previous is not None
            and previous.snapshot.process.pid != message.observation.snapshot.process.pid
        ):
            self._cpu.clear()  # a restarted worker: its curves start over
            self._rss.clear()
        with self.batch_update():
            self.observation = message.observation
            formatting.set_project_root(message.observation.snapshot.process.cwd)
            if self.source.live:
                self.connection = "paused" if self.poller.paused else "live"
            self.disconnect_reason = None
            self._refresh_header()
            self._refresh_tab_labels()
            for view_id, _title, _view in self._view_specs:
                self.view(view_id).stale = True
            self.active_view.show(message.observation)
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
        self._refresh_header()

    @on(SourceDisconnected)
    def note_disconnected(self, message: SourceDisconnected) -> None:
        if not self._ui_ready() or not self._is_current(message.origin):
            return
        self.disconnect_reason = message.reason
        self.retry_in = message.retry_in
        self.connection = "disconnected"
        self._refresh_header()
        if self.fleet is not None:
            self.fleet.wake()  # the worker may be gone for good: look for the live ones now

    @work(thread=True, exclusive=True, group="vitals", exit_on_error=False)
    def _sample_vitals(self) -> None:
        """psutil reads take milliseconds (connections scan /proc): never on the UI thread."""
        if self.poller.paused or self.observation is None or self._vitals_factory is None:
            return
        process = self.observation.snapshot.process
        reader = self._vitals_reader
        if reader is None or reader.pid != process.pid:
            reader = self._vitals_factory(self.source.address, process.pid, process.started_at)
            self._vitals_reader = reader
            if reader is None:
                self._vitals_reason = "the target is not on this machine"
                self.post_message(VitalsSampled(None))
                return
        vitals = reader.read()
        if vitals is None:
            self._vitals_reader = None
            self._vitals_reason = "the process is gone"
        self.post_message(VitalsSampled(vitals))

    @on(VitalsSampled)
    def show_vitals(self, message: VitalsSampled) -> None:
        if not self._ui_ready():
            return
        self.record_vitals(message.vitals)

    def record_vitals(self, vitals: Vitals | None) -> None:
        if vitals is not None:
            if vitals.cpu_percent is not None:
                self._cpu.append(vitals.cpu_percent)
            if vitals.rss is not None:
                self._rss.append(float(vitals.rss))
        self._header.show_vitals(vitals, self._cpu, self._rss, self._vitals_reason)

    # --- drawing ---------------------------------------------------------------------------

    def data_age(self) -> float | None:
        if self.observation is None:
            return None
        if not self.source.live:
            return self.clock() - self.observation.snapshot.taken_at
        return self.clock() - self.observation.received_at

    def _refresh_header(self) -> None:
        snapshot = self.observation.snapshot if self.observation else None
        header = self._header
        header.show_target(
            state=self.connection,
            address=self.source.address,
            snapshot=snapshot,
            data_age=self.data_age(),
            interval=self.poller.interval,
            now=self.clock(),
            group=self.worker_label(),
        )
        header.show_lag(snapshot)
        live_now = self.connection == "live"
        extra = (
            max(0.0, self.clock() - self.observation.received_at)
            if live_now and self.observation
            else 0.0
        )
        self._stall_banner.show_stall(snapshot, extra)
        self._connection_banner.show_state(
            self.disconnect_reason if self.connection == "disconnected" else None,
            self.retry_in,
            self.data_age(),
        )

    def _tick(self) -> None:
        if self._ui_ready():
            self._refresh_header()

    def _ui_ready(self) -> bool:
        """False before mount and once shutting down: late messages from threads are dropped."""
        return hasattr(self, "_header") and self.is_running

    def on_resize(self) -> None:
        if self._ui_ready():
            self._refresh_tab_labels()

    def _refresh_tab_labels(self) -> None:
        observation = self.observation
        counts: dict[str, int] = {}
        if observation is not None:
            counts = self._counts(observation)
        if self.group is not None:
            counts["workers"] = len(self.group_workers)
        narrow = self.size.width < 100
        for number, (view_id, title, _view) in enumerate(self._view_specs, start=1):
            label = f"{number} {SHORT_TITLES.get(view_id, title) if narrow else title}"
            if counts.get(view_id):
                label += f" {formatting.count(counts[view_id])}"
            if self._tab_labels.get(view_id) != label:
                self._tab_labels[view_id] = label
                self.views.get_tab(view_id).label = label

    @staticmethod
    def _counts(observation: Observation) -> dict[str, int]:
        snapshot = observation.snapshot
        return {
            "findings": len(observation.findings),
            "tasks": len(snapshot.tasks),
            "requests": len(snapshot.requests),
            "background": sum(
                1
                for j in observation.events.background
                if j.state in ("failed", "dropped", "skipped")
            ),
            "stalls": len(observation.events.stalls),
            "exceptions": len(observation.events.exceptions),
        }

    @on(TabbedContent.TabActivated, "#views")
    def catch_up_view(self, event: TabbedContent.TabActivated) -> None:
        view = self.view(event.pane.id or "findings")
        self._catch_up(view)
        view.focus_main()

    def _catch_up(self, view: View) -> None:
        """Show the newest observation in a view that was hidden when it came."""
        if view.stale and self.observation is not None:
            view.show(self.observation)

    def _caught_up(self, view_id: str, kind: type[_V]) -> _V:
        """The view `view_id` (of type `kind`), brought up to the newest observation."""
        view = self._views[view_id]
        assert isinstance(view, kind)
        self._catch_up(view)
        return view

    # --- navigation ------------------------------------------------------------------------

    def action_show_view(self, view_id: str) -> None:
        if view_id not in self._views:
            return
        if self.views.active != view_id:
            self._previous_view = self.views.active
            self.views.active = view_id

    def action_previous_view(self) -> None:
        if self._previous_view is not None:
            self.action_show_view(self._previous_view)

    @on(OpenTask)
    def open_task(self, message: OpenTask) -> None:
        self.action_open_task(message.task_id)

    def action_open_task(self, task_id: int) -> None:
        self._caught_up("task", TaskDetailView).show_task(task_id)
        self.action_show_view("task")

    @on(OpenRequest)
    def open_request(self, message: OpenRequest) -> None:
        self.action_open_request(message.request_id)

    def action_open_request(self, request_id: int) -> None:
        self.action_show_view("requests")
        self._caught_up("requests", RequestsView).show_request(request_id)

    @on(OpenThread)
    def open_thread(self, message: OpenThread) -> None:
        self.action_open_thread(message.thread_id)

    def action_open_thread(self, thread_id: int) -> None:
        self.action_show_view("threads")
        self._caught_up("threads", ThreadsView).show_thread(thread_id)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # --- workers ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="fleet", exit_on_error=False)
    def _run_fleet(self) -> None:
        assert self.fleet is not None
        self.fleet.run()

    def _emit_workers(self, statuses: list[WorkerStatus]) -> None:
        """Called on the fleet poller's thread."""
        self.post_message(WorkersUpdated(statuses))

    def worker_label(self) -> str | None:
        """ "worker 2/4 (pid 4242)" in a worker group, None otherwise."""
        if self.group is None:
            return None
        current = self.current_worker
        if current is None:
            return f"parent pid {self.group.parent_pid} · no worker"
        position = next(
            (i for i, w in enumerate(self.group_workers, start=1) if w.pid == current.pid), None
        )
        where = f"{position}/{len(self.group_workers)}" if position is not None else "gone"
        return f"worker {where} (pid {current.pid})"

    @on(WorkersUpdated)
    def follow_workers(self, message: WorkersUpdated) -> None:
        """Drop the dead workers, add the new ones; leave a dead current worker for a live one."""
        if not self._ui_ready():
            return
        self.worker_statuses = message.statuses
        self.group_workers = [status.worker for status in message.statuses]
        current = self.current_worker
        if current is not None and all(w.pid != current.pid for w in self.group_workers):
            self._replace_gone_worker(current)
        elif current is None and self.group_workers:
            self.switch_to_worker(self.group_workers[0])
        self._show_workers()
        self._refresh_header()
        self._refresh_tab_labels()

    def _replace_gone_worker(self, gone: Worker) -> None:
        same_address = next((w for w in self.group_workers if w.address == gone.address), None)
        if same_address is not None:
            # A restarted worker on the same port: the poller reconnects to it by itself.
            self.current_worker = same_address
            self.notify(
                printable(
                    f"Worker pid {gone.pid} is gone; pid {same_address.pid} replaced it on "
                    f"{same_address.address}."
                ),
                title="Worker restarted",
                severity="warning",
                markup=False,
            )
            return
        answering = [s.worker for s in self.worker_statuses if s.error is None]
        candidates = answering or self.group_workers
        if not candidates:
            self.notify(
                f"Worker pid {gone.pid} is gone and no other worker is running yet.",
                title="Worker gone",
                severity="error",
            )
            return
        replacement = candidates[0]
        self.switch_to_worker(replacement, quiet=True)
        self.notify(
            f"Worker pid {gone.pid} is gone; now showing pid {replacement.pid}.",
            title="Worker gone",
            severity="warning",
        )

    def _show_workers(self) -> None:
        view = self._views.get("workers")
        if isinstance(view, WorkersView):
            current = self.current_worker.pid if self.current_worker else None
            view.show_workers(self.worker_statuses, current)

    def switch_to_worker(self, worker: Worker, *, quiet: bool = False) -> None:
        """Point the main views at `worker`: a new source and poller; the old ones stop."""
        if self.group is None:
            return
        if self.current_worker is not None and worker.pid == self.current_worker.pid:
            return
        paused = self.poller.paused
        interval = self.poller.interval
        self.poller.stop()
        self.source = self.group.source_factory(worker.address)
        self.poller = self._make_poller(self.source, interval)
        if paused:
            self.poller.pause()
        self.current_worker = worker
        self.observation = None
        self.hello = None
        self.connection = "connecting"
        self.disconnect_reason = None
        self._cpu.clear()
        self._rss.clear()
        self._vitals_reader = None
        self._run_poller()
        self._show_workers()
        self._refresh_header()
        self._refresh_tab_labels()
        if not quiet:
            self.notify(f"Showing {self.worker_label()}.", markup=False)

    @on(SwitchWorker)
    def switch_on_request(self, message: SwitchWorker) -> None:
        worker = next((w for w in self.group_workers if w.pid == message.pid), None)
        if worker is None:
            self.notify(f"Worker pid {message.pid} is gone.", severity="warning")
            return
        self.switch_to_worker(worker)
        self.action_show_view("findings")

    def _step_worker(self, step: int) -> None:
        if not self.group_workers:
            self.notify("No worker to switch to yet.", severity="warning")
            return
        current = self.current_worker
        index = next(
            (i for i, w in enumerate(self.group_workers) if current and w.pid == current.pid), -1
        )
        if len(self.group_workers) == 1 and index == 0:
            self.notify("This is the only worker.")
            return
        self.switch_to_worker(self.group_workers[(index + step) % len(self.group_workers)])

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

    # --- polling control -------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        if not self.source.live:
            self.notify("A saved snapshot does not change: nothing to pause.")
            return
        if self.poller.paused:
            self.poller.resume()
            if self.connection == "paused":
                self.connection = "live"
            self.notify("Resumed.")
        else:
            self.poller.pause()
            if self.connection == "live":
                self.connection = "paused"
            self.notify("Paused: the screen keeps the data it has. Press p to resume.")
        self._refresh_header()

    def _step_interval(self, step: int) -> None:
        current = self.poller.interval
        index = min(range(len(INTERVALS)), key=lambda i: abs(INTERVALS[i] - current))
        new = INTERVALS[max(0, min(len(INTERVALS) - 1, index + step))]
        self.poller.set_interval(new)
        self.notify(f"Refreshing every {formatting.duration(new)}.")
        self._refresh_header()

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
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(snapshot.taken_at))
        base = f"inspector-snapshot-{snapshot.process.pid}-{stamp}"
        path = directory / f"{base}.json"
        suffix = 1
        while path.exists():
            path = directory / f"{base}-{suffix}.json"
            suffix += 1
        try:
            path.write_text(protocol.encode_snapshot_file(snapshot), encoding="utf-8")
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
        frame = self.active_view.current_location()
        if frame is None:
            self.notify("No source line under the cursor here.", severity="warning")
            return
        # Escaped like everything shown: a file name with a newline or an escape sequence would
        # otherwise run in the shell it is pasted into.
        text = printable(formatting.full_location(frame))
        self.copy_to_clipboard(text)
        self.notify(f"Copied {text}", markup=False)

    def cancel_refusal(self) -> str | None:
        """Why a task cannot be cancelled now, or None when it can."""
        if not self.source.live:
            return "this is a saved snapshot"
        if self.connection == "disconnected":
            return "the target is disconnected"
        observation = self.observation
        if observation is None:
            return "no data yet"
        if "cancel" not in observation.snapshot.capabilities:
            return "the target does not offer it"
        if observation.snapshot.health.read_only or (
            self.hello is not None and self.hello.read_only
        ):
            return "the agent is read-only"
        return None

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
        where = formatting.task_where(task)
        detail = f"{task.coro} at {where}. It receives CancelledError at its current await" + (
            " and its request fails." if task.request_id is not None else "."
        )

        def answer(confirmed: bool | None) -> None:
            if confirmed:
                self._cancel(task_id)

        self.push_screen(
            ConfirmScreen(f"Cancel {task.name} (#{task.id})?", detail, yes_label="Cancel task"),
            answer,
        )

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

    # --- command palette -------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for number, (view_id, title, _view) in enumerate(self._view_specs, start=1):
            yield SystemCommand(
                f"Show {title}",
                f"Switch to the {title} view ({number})",
                lambda view_id=view_id: self.action_show_view(view_id),
            )
        yield SystemCommand(
            "Pause / resume", "Stop or restart polling the target (p)", self.action_toggle_pause
        )
        yield SystemCommand(
            "Save snapshot",
            "Write the data on screen as JSON in the current directory (s)",
            self.action_save,
        )
        yield SystemCommand(
            "Copy location", "Copy the highlighted file:line (c)", self.action_copy_location
        )
        yield SystemCommand(
            "Cancel task",
            "Cancel the selected task, after a confirmation (x)",
            self.action_cancel_task,
        )
        if self.group is not None:
            yield SystemCommand(
                "Next worker", "Show the next worker of the server (w)", self.action_next_worker
            )
            total = len(self.group_workers)
            for position, worker in enumerate(self.group_workers, start=1):
                yield SystemCommand(
                    f"Switch to worker {position}/{total} (pid {worker.pid})",
                    f"Show worker pid {worker.pid}, agent {palette_text(worker.address)}",
                    lambda worker=worker: self.switch_to_worker(worker),
                )
        yield SystemCommand("Poll faster", "Shorten the refresh interval (-)", self.action_faster)
        yield SystemCommand("Poll slower", "Lengthen the refresh interval (+)", self.action_slower)


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

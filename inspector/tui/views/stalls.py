"""Provides the Stalls view: when the event loop stopped, for how long, and where."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from inspector.model import Frame, LoopStats, StackSample, Stall
from inspector.plurals import plural
from inspector.render.text import stall_profile
from inspector.tui import formatting
from inspector.tui.content import markup
from inspector.tui.poller import Observation
from inspector.tui.views.base import View
from inspector.tui.widgets.detail_pane import DetailPane
from inspector.tui.widgets.live_table import Column, LiveTable, Row
from inspector.tui.widgets.stack_text import DetailText, FoldId

BAR_WIDTH = 20
COLUMNS = (
    Column("when", "When", 8, align="right"),
    Column("duration", "Blocked", 8, align="right"),
    Column("bar", "", BAR_WIDTH, min_width=90),
    Column("at", "At", 22, flex=True, grow=2),
    Column("call", "Calling", 16, min_width=110),
    Column("serving", "Serving", 20, grow=1),
)


def stall_location(stall: Stall) -> tuple[Frame | None, str | None]:
    """The innermost application frame of the stack the stall spent most of its time at, and
    what it was calling there (the line `doctor` names)."""
    places = profile(stall.samples)
    if not places:
        return None, None
    frames = places[0][2]
    return formatting.stall_place(frames)


def stall_row(stall: Stall, now: float, longest: float) -> Row:
    frame, call = stall_location(stall)
    severe = stall.ongoing or stall.duration >= 1.0
    filled = max(1, round(BAR_WIDTH * stall.duration / longest)) if longest > 0 else 1
    when = "now" if stall.ongoing else formatting.age(now - stall.started_at)
    return (
        (when, "error") if stall.ongoing else when,
        (formatting.duration(stall.duration), "error" if severe else "warning"),
        ("█" * filled, "error" if severe else "warning"),
        f"{formatting.location(frame)} {frame.function}" if frame else "—",
        call or "",
        stall.request_label or stall.background_label or stall.task_name or "",
    )


def profile(samples: tuple[StackSample, ...]) -> list[tuple[float, int, tuple[Frame, ...]]]:
    """A stall's stacks as (first seen, samples there, frames), where it spent most time first
    (`stall_profile`, as `dump` lists them)."""
    return [(sample.offset, sample.count, sample.frames) for sample in stall_profile(samples)]


def stall_content(
    stall: Stall, *, show_all: bool = False, expanded: frozenset[FoldId] = frozenset()
) -> DetailText:
    state = "[b $text-error]blocked now[/]" if stall.ongoing else "ended"
    text = DetailText(expanded).add(
        markup(
            f"[b]Stall {stall.id}[/b] · {formatting.duration(stall.duration)} · {state}"
            + (" · serving $request" if stall.request_label else "")
            + (" · background $background" if stall.background_label else "")
            + (" · task $task" if stall.task_name else ""),
            request=stall.request_label or "",
            background=stall.background_label or "",
            task=stall.task_name or "",
        )
    )
    if not stall.samples:
        text.add(
            Content.from_markup(
                "[dim]No stack was sampled "
                "(the stall was shorter than the sampling interval).[/dim]"
            )
        )
    places = profile(stall.samples)
    total = sum(count for _, count, _ in places)
    for first, count, frames in places:
        share = f"{round(100 * count / total)} %" if total else "?"
        text.add(
            Content.from_markup(
                f"[b]{share} of the stall[/b] [dim]({count} of {plural(total, 'sample')}, first at "
                f"{formatting.duration(first)})[/dim]"
            )
        )
        text.add_stack(frames, show_all=show_all)
    return text


def stalls_title(stalls: Sequence[Stall], loop: LoopStats | None) -> str:
    """ "2 stalls, 3.1 s blocked in all · threshold 100 ms"."""
    threshold = f" · threshold {formatting.duration(loop.stall_threshold)}" if loop else ""
    total = sum(stall.duration for stall in stalls)
    return f"{plural(len(stalls), 'stall')}, {formatting.duration(total)} blocked in all{threshold}"


class StallTimeline(Widget):
    """One mark per stall along the time since the first one; red for a second or more."""

    DEFAULT_CSS = """
    StallTimeline { height: 2; padding: 0 1; }
    """

    stalls: reactive[tuple[Stall, ...]] = reactive(())
    now: reactive[float] = reactive(0.0)

    def render(self) -> Content:
        width = max(10, self.size.width)
        if not self.stalls:
            return Content.from_markup("[dim]No stall since attaching.[/dim]")
        start = min(stall.started_at for stall in self.stalls)
        span = max(self.now - start, 1.0)
        cells = ["·"] * width
        tones = [""] * width
        for stall in self.stalls:
            column = min(width - 1, int((stall.started_at - start) / span * (width - 1)))
            severe = stall.ongoing or stall.duration >= 1.0
            cells[column] = "█" if severe else "▄"
            if tones[column] != "$text-error":
                tones[column] = "$text-error" if severe else "$text-warning"
        line = "".join(
            f"[{tone}]{cell}[/]" if tone else f"[dim]{cell}[/dim]"
            for cell, tone in zip(cells, tones, strict=False)
        )
        left = f"{formatting.duration(span)} ago"
        axis = left + " " * max(1, width - len(left) - 3) + "now"
        return markup(line + "\n[dim]$axis[/dim]", axis=axis)


class StallsView(View):
    """Every stall seen since attaching, newest first, with the stacks sampled during it."""

    requires = ("stalls",)
    missing_text = "Loop stalls"
    filter_placeholder = "file, function, call, request"

    def compose_body(self) -> ComposeResult:
        yield Static("", id="stalls-title", classes="section-title")
        yield StallTimeline(id="stall-timeline")
        yield LiveTable(
            COLUMNS, id="stalls-table", empty_text="The loop has not stalled since attaching."
        )
        yield DetailPane("stall-detail")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#stalls-table", LiveTable)

    def focus_main(self) -> None:
        self.table.focus()

    def _stalls(self) -> dict[str, Stall]:
        if self.observation is None:
            return {}
        return {f"{stall.id}@{stall.started_at}": stall for stall in self.observation.events.stalls}

    def update_view(self, observation: Observation) -> None:
        snapshot = observation.snapshot
        stalls = sorted(observation.events.stalls, key=lambda s: -s.started_at)
        longest = max((stall.duration for stall in stalls), default=0.0)
        now = snapshot.taken_at
        self.table.sync((f"{s.id}@{s.started_at}", stall_row(s, now, longest)) for s in stalls)
        timeline = self.query_one(StallTimeline)
        timeline.stalls = tuple(stalls)
        timeline.now = now
        self.query_one("#stalls-title", Static).update(stalls_title(stalls, snapshot.loop))
        self._show_detail()

    @on(LiveTable.Highlighted, "#stalls-table")
    def _show_detail(self) -> None:
        stall = self._stalls().get(self.table.cursor_key or "")
        show_all = self.all_frames
        self.query_one(DetailPane).show(
            (lambda opened: stall_content(stall, show_all=show_all, expanded=opened))
            if stall is not None
            else "",
            (self.table.cursor_key, show_all),
        )

    def refresh_frames(self) -> None:
        if self.is_mounted:
            self._show_detail()

    def current_location(self) -> Frame | None:
        stall = self._stalls().get(self.table.cursor_key or "")
        if stall is None:
            return None
        return self.query_one(DetailPane).current_frame or stall_location(stall)[0]

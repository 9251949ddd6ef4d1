"""Provides the Findings view: what is wrong, worst first; each expands to its evidence."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from inspector.diagnose import unchecked
from inspector.diagnose.findings import Finding
from inspector.model import Frame, Snapshot
from inspector.tui import formatting
from inspector.tui.content import markup
from inspector.tui.filtering import filter_words, matches, searchable
from inspector.tui.messages import OpenRequest, OpenTask
from inspector.tui.poller import Observation
from inspector.tui.views.base import View
from inspector.tui.views.task_detail import task_link
from inspector.tui.widgets.links import LinkedText

SEVERITY_STYLE = {"critical": "$text-error", "warning": "$text-warning", "info": "$text-primary"}
SEVERITY_MARK = {"critical": "●", "warning": "▲", "info": "ℹ"}


def finding_key(finding: Finding) -> str:
    """Stable across updates while the title's numbers change ("blocked 2.3 s" → "2.5 s")."""
    where = formatting.full_location(finding.location) if finding.location else ""
    return (
        f"{finding.kind}|{where}|{finding.request or ''}|{','.join(map(str, finding.task_ids[:4]))}"
    )


def request_id_for(finding: Finding, snapshot: Snapshot) -> int | None:
    """The request a finding concerns: through its tasks, else by its "METHOD /route" label."""
    for task_id in finding.task_ids:
        task = snapshot.task(task_id)
        if task is not None and task.request_id is not None:
            return task.request_id
    if finding.request:
        for request in (*snapshot.requests, *reversed(snapshot.recent_requests)):
            if finding.request in (
                formatting.request_label(request),
                f"{request.method} {request.path}",
            ):
                return request.id
    return None


def mark_content(finding: Finding, expanded: bool) -> Content:
    style = SEVERITY_STYLE.get(finding.severity, "$foreground")
    mark = SEVERITY_MARK.get(finding.severity, "•")
    return Content.from_markup(f"{'▾' if expanded else '▸'} [{style}]{mark}[/]")


def title_content(finding: Finding) -> Content:
    count = f" [dim]×{finding.count}[/dim]" if finding.count > 1 else ""
    where = "  [dim]$where[/dim]" if finding.location else ""
    return markup(
        f"[b]$title[/b]{count}{where}",
        title=finding.title,
        where=formatting.location(finding.location),
    )


def evidence_content(finding: Finding, snapshot: Snapshot | None) -> Content:
    """The expanded part: what was seen, how to fix it, where, and links to tasks and requests."""
    style = SEVERITY_STYLE.get(finding.severity, "$foreground")
    lines = [
        markup(
            f"[{style}]$severity[/] · [dim]$kind[/dim]",
            severity=finding.severity,
            kind=finding.kind,
        )
    ]
    if finding.detail:
        lines.append(markup("$detail", detail=finding.detail))
    if finding.hint:
        lines.append(markup("[b $text-success]Fix:[/] $hint", hint=finding.hint))
    if finding.location is not None:
        frame = finding.location
        lines.append(
            markup(
                "[b]At:[/b] $where in $function" + ("  [dim]$code[/dim]" if frame.code else ""),
                where=formatting.location(frame),
                function=frame.function,
                code=frame.code or "",
            )
        )
    for frame in finding.related[:6]:
        lines.append(
            markup(
                "[dim]Also:[/dim] $where in $function",
                where=formatting.location(frame),
                function=frame.function,
            )
        )
    links: list[Content] = []
    if finding.task_ids:
        shown = Content(", ").join(task_link(task_id, snapshot) for task_id in finding.task_ids[:6])
        more = len(finding.task_ids) - 6
        links.append(
            Content.from_markup("[b]Tasks:[/b] ")
            + shown
            + (f" and {more} more" if more > 0 else "")
        )
    request_id = request_id_for(finding, snapshot) if snapshot is not None else None
    if finding.request:
        links.append(
            markup(
                f"[b]Request:[/b] [@click=open_request({request_id})]$label[/]"
                if request_id is not None
                else "[b]Request:[/b] $label",
                label=finding.request,
            )
        )
    if finding.worker is not None:
        links.append(markup("[b]Worker:[/b] $worker", worker=finding.worker))
    if links:
        lines.append(Content("   ").join(links))
    lines.append(
        Content.from_markup(
            "[dim]t task · r request · c copy location · e edit · enter collapse[/dim]"
        )
    )
    return Content("\n").join(lines)


class FindingItem(Vertical, can_focus=True):
    """One finding; Enter (or a click) expands it to its evidence."""

    DEFAULT_CSS = """
    FindingItem { height: auto; padding: 0 1; }
    FindingItem > .finding-head { height: auto; }
    FindingItem .finding-mark { width: 4; }
    FindingItem .finding-title { width: 1fr; height: auto; }
    FindingItem > .finding-evidence { height: auto; padding-left: 4; display: none; }
    FindingItem.-expanded > .finding-evidence { display: block; }
    """

    expanded: reactive[bool] = reactive(False)
    """Whether the evidence shows."""

    def __init__(self, finding: Finding, key: str, snapshot: Snapshot | None) -> None:
        super().__init__()
        self.finding = finding
        self.key = key
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        with Horizontal(classes="finding-head"):
            yield Static(classes="finding-mark")
            yield Static(classes="finding-title")
        yield LinkedText(classes="finding-evidence")

    def on_mount(self) -> None:
        self._render_parts()

    def _render_parts(self) -> None:
        self.query_one(".finding-mark", Static).update(mark_content(self.finding, self.expanded))
        self.query_one(".finding-title", Static).update(title_content(self.finding))
        if self.expanded:
            self.query_one(".finding-evidence", LinkedText).update(
                evidence_content(self.finding, self.snapshot)
            )

    def set_finding(self, finding: Finding, snapshot: Snapshot | None) -> None:
        if finding != self.finding or snapshot is not self.snapshot:
            self.finding = finding
            self.snapshot = snapshot
            if self.is_mounted:
                self._render_parts()

    def watch_expanded(self) -> None:
        self.set_class(self.expanded, "-expanded")
        if self.is_mounted:
            self._render_parts()

    async def _on_click(self, event: events.Click) -> None:
        if event.style.meta.get("@click"):
            return  # a link inside the evidence
        self.focus()
        self.expanded = not self.expanded


def finding_text(finding: Finding) -> str:
    """What `/` finds a finding by: its words, its place, its request and worker."""
    where = formatting.location(finding.location) if finding.location else ""
    return searchable(
        (finding.title, finding.kind, finding.severity, finding.detail or "", where),
        finding.request or "",
        str(finding.worker or ""),
    )


class FindingsView(View):
    """Worst first. Updated in place by finding key, so expansion and focus survive updates."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "move(1)", "Next", show=False),
        Binding("up,k", "move(-1)", "Previous", show=False),
        Binding("enter,space", "toggle_finding", "Expand"),
        Binding("t", "open_task", "Task"),
        Binding("r", "open_request", "Request"),
    ]
    filter_placeholder = "title, kind, file, request"

    def compose_body(self) -> ComposeResult:
        yield Static("Waiting for the first snapshot…", id="findings-empty", classes="empty")
        yield VerticalScroll(id="findings-list")

    @property
    def items(self) -> list[FindingItem]:
        return list(self.query_one("#findings-list").query_children(FindingItem))

    def focus_main(self) -> None:
        items = [item for item in self.items if item.display]
        if items and not any(item.has_focus for item in items):
            items[0].focus()

    def update_view(self, observation: Observation) -> None:
        findings = observation.findings
        snapshot = observation.snapshot
        empty = self.query_one("#findings-empty", Static)
        if not findings:
            missing = unchecked(snapshot)
            empty.update(
                markup(
                    "[$text-success]✓ Nothing wrong found in the latest snapshot.[/]\n\n"
                    "[dim]Stalls, requests, tasks and exceptions are in the other views "
                    "(2–8).[/dim]"
                    + ("\n\n[$text-warning]Not checked: $missing.[/]" if missing else ""),
                    missing=missing or "",
                )
            )
        empty.display = not findings
        keyed = [(finding_key(finding), finding) for finding in findings]
        items = self.items
        if [item.key for item in items] == [key for key, _ in keyed]:
            for item, (_key, finding) in zip(items, keyed, strict=False):
                item.set_finding(finding, snapshot)
        else:
            self._rebuild(keyed, snapshot, items)
        self.apply_filter(self.filter_text)

    def apply_filter(self, text: str) -> None:
        """Hide the findings that do not match: they are widgets, not table rows."""
        words = filter_words(text)
        for item in self.items:
            item.display = matches(finding_text(item.finding), words)
        self.update_filter_summary()

    def update_filter_summary(self) -> None:
        bar = self.filter_bar
        if bar is not None:
            items = self.items
            shown = sum(1 for item in items if item.display)
            bar.summary = f"{shown} of {len(items)} findings" if self.filter_text else ""

    def _rebuild(
        self, keyed: list[tuple[str, Finding]], snapshot: Snapshot, items: list[FindingItem]
    ) -> None:
        """Findings came or went: rebuild the list, keeping expansion and focus by key."""
        expanded = {item.key for item in items if item.expanded}
        focused = next((item.key for item in items if item.has_focus), None)
        container = self.query_one("#findings-list")
        with self.app.batch_update():
            container.remove_children()
            fresh = []
            for index, (key, finding) in enumerate(keyed):
                item = FindingItem(finding, key, snapshot)
                item.expanded = key in expanded or (not items and index == 0 and not expanded)
                fresh.append(item)
            container.mount_all(fresh)
        target = next((item for item in fresh if item.key == focused), None)
        if target is None and not items:
            # The first findings: put the cursor on the worst. This view is the one on screen:
            # the app shows observations to the visible view only (`View.show`).
            target = fresh[0] if fresh else None
        if target is not None:
            self.call_after_refresh(target.focus)

    def _focused(self) -> FindingItem | None:
        return next((item for item in self.items if item.has_focus), None)

    def action_move(self, delta: int) -> None:
        items = [item for item in self.items if item.display]
        if not items:
            return
        current = self._focused()
        index = items.index(current) + delta if current in items else 0
        target = items[max(0, min(len(items) - 1, index))]
        target.focus()
        target.scroll_visible()

    def action_toggle_finding(self) -> None:
        item = self._focused()
        if item is not None:
            item.expanded = not item.expanded
            item.scroll_visible()

    def action_open_task(self) -> None:
        item = self._focused()
        if item is not None and item.finding.task_ids:
            self.post_message(OpenTask(item.finding.task_ids[0]))

    def action_open_request(self) -> None:
        item = self._focused()
        if item is None or self.observation is None:
            return
        request_id = request_id_for(item.finding, self.observation.snapshot)
        if request_id is not None:
            self.post_message(OpenRequest(request_id))
        else:
            self.notify("This finding names no request that is still known.", severity="warning")

    def current_location(self) -> Frame | None:
        item = self._focused()
        return item.finding.location if item is not None else None

    def selected_task_id(self) -> int | None:
        return None

"""Provides the Tasks view's rows, computed on the poller's thread (no Textual here).

Formatting 10,000 rows (the innermost application frame of each stack, the wait, the request)
costs ~150 ms of Python; done on the UI thread it would freeze the keyboard once a second.
The poller builds them with each observation, reusing a task's row when the task did not
change, so the UI thread only filters, sorts and diffs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from inspector.model import RequestInfo, Snapshot, TaskInfo
from inspector.tui import formatting
from inspector.tui.filtering import searchable
from inspector.tui.widgets.cells import Row

SortKey = Literal["age", "state", "name"]
SORTS: tuple[SortKey, ...] = ("age", "state", "name")
STATE_ORDER: dict[str, int] = {"running": 0, "failed": 1, "pending": 2, "cancelled": 3, "done": 4}
STATE_TONES: dict[str, str] = {
    "running": "accent",
    "failed": "error",
    "cancelled": "muted",
    "done": "muted",
}
GROUP_PREFIX = "coro:"


@dataclass(frozen=True)
class TaskQuery:
    """What the table shows: a filter, a sort, and whether to group by coroutine."""

    text: str = ""
    sort: SortKey = "age"
    reverse: bool = False
    grouped: bool = False


@dataclass(frozen=True)
class ShortIds:
    """Short task ids a person can read and type: #1, #2… in the order tasks were first seen
    (the oldest first), kept for a task's life and never given to another. A task's own id is
    its object's address, 140025873421312: unreadable, and alike at a glance."""

    numbers: Mapping[int, int]
    next_number: int

    def follow(self, tasks: Iterable[TaskInfo]) -> ShortIds:
        """The numbers for `tasks`: the known keep theirs, the new are numbered oldest first,
        the gone are dropped."""
        numbers: dict[int, int] = {}
        new: list[TaskInfo] = []
        for task in tasks:
            number = self.numbers.get(task.id)
            if number is None:
                new.append(task)
            else:
                numbers[task.id] = number
        next_number = self.next_number
        for task in sorted(new, key=lambda t: (-(t.age or 0.0), t.id)):
            numbers[task.id] = next_number
            next_number += 1
        return ShortIds(numbers, next_number)


@dataclass(frozen=True)
class TaskRows:
    """Each task's row, the lower-case text the filter searches, and the row keys in each sort
    order, all keyed by the task id as text (the table's row key)."""

    rows: Mapping[str, Row] = field(default_factory=dict)
    search: Mapping[str, str] = field(default_factory=dict)
    tasks: Mapping[int, TaskInfo] = field(default_factory=dict)
    orders: Mapping[SortKey, list[str]] = field(default_factory=dict)
    short_ids: ShortIds = field(default_factory=lambda: ShortIds({}, 1))

    def short_id(self, task_id: int) -> str:
        """ "#12"; empty for a task not in the snapshot (gone: its number went with it)."""
        number = self.short_ids.numbers.get(task_id)
        return f"#{number}" if number is not None else ""


def task_row(
    task: TaskInfo, request: RequestInfo | None, stuck_after: float, short_id: str = ""
) -> Row:
    stuck = (
        task.state == "pending" and task.request_id is not None and (task.age or 0) >= stuck_after
    )
    state_tone = STATE_TONES.get(task.state)
    return cast(
        Row,
        (
            short_id or str(task.id),
            task.name,
            (task.state, state_tone) if state_tone else task.state,
            (formatting.age(task.age), "warning") if stuck else formatting.age(task.age),
            formatting.wait_text(task.waiting_on) or (task.exception or ""),
            formatting.task_where(task),
            formatting.request_label(request),
        ),
    )


def search_text(row: Row, task: TaskInfo) -> str:
    """What the filter matches: the text as the table shows it (escaped), and the coroutine."""
    return searchable(row, task.coro, str(task.id))


def build_task_rows(
    snapshot: Snapshot, stuck_after: float, previous: TaskRows | None = None
) -> TaskRows:
    """Rows for every task; a task equal to the one seen last time keeps its row object."""
    requests = {r.id: r for r in (*snapshot.recent_requests, *snapshot.requests)}
    old_tasks = previous.tasks if previous is not None else {}
    old_rows = previous.rows if previous is not None else {}
    old_search = previous.search if previous is not None else {}
    short_ids = (previous.short_ids if previous is not None else ShortIds({}, 1)).follow(
        snapshot.tasks
    )
    rows: dict[str, Row] = {}
    search: dict[str, str] = {}
    tasks: dict[int, TaskInfo] = {}
    for task in snapshot.tasks:
        key = str(task.id)
        request = requests.get(task.request_id) if task.request_id is not None else None
        before = old_tasks.get(task.id)
        short_id = f"#{short_ids.numbers[task.id]}"
        if (
            before is not None
            and before == task
            and old_rows[key][6] == formatting.request_label(request)
            and old_rows[key][0] == short_id
        ):
            rows[key] = old_rows[key]
            search[key] = old_search[key]
        else:
            row = task_row(task, request, stuck_after, short_id)
            rows[key] = row
            search[key] = search_text(row, task)
        tasks[task.id] = task
    orders = {sort: [str(t.id) for t in sort_tasks(snapshot.tasks, sort, False)] for sort in SORTS}
    return TaskRows(rows=rows, search=search, tasks=tasks, orders=orders, short_ids=short_ids)


def sort_tasks(tasks: Iterable[TaskInfo], sort: SortKey, reverse: bool) -> list[TaskInfo]:
    if sort == "name":
        ordered = sorted(tasks, key=lambda t: (t.name.lower(), t.id))
    elif sort == "state":
        ordered = sorted(tasks, key=lambda t: (STATE_ORDER.get(t.state, 9), -(t.age or 0.0), t.id))
    else:
        ordered = sorted(tasks, key=lambda t: (-(t.age or 0.0), t.id))
    return ordered[::-1] if reverse else ordered


def group_rows(tasks: Iterable[TaskInfo], sort: SortKey, reverse: bool) -> list[tuple[str, Row]]:
    """One row per coroutine: how many tasks run it, in which states, the oldest one."""
    groups: dict[str, list[TaskInfo]] = {}
    for task in tasks:
        groups.setdefault(task.coro, []).append(task)
    rows: list[tuple[float, int, str, Row]] = []
    for coro, members in groups.items():
        states = Counter(task.state for task in members)
        waits = Counter(formatting.wait_text(t.waiting_on) for t in members if t.waiting_on)
        oldest = max((task.age or 0.0) for task in members)
        state_text = ", ".join(f"{n} {state}" for state, n in states.most_common())
        row: Row = (
            str(len(members)),
            coro,
            (state_text, "error") if states.get("failed") else state_text,
            formatting.age(oldest),
            waits.most_common(1)[0][0] if waits else "",
        )
        rows.append((oldest, len(members), coro, row))
    if sort == "name":
        rows.sort(key=lambda r: r[2].lower())
    elif sort == "state":
        rows.sort(key=lambda r: (-r[1], r[2]))
    else:
        rows.sort(key=lambda r: (-r[0], r[2]))
    if reverse:
        rows.reverse()
    return [(GROUP_PREFIX + coro, row) for _oldest, _n, coro, row in rows]

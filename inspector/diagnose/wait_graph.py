"""The wait-for graph of a snapshot's tasks, and the cycles in it (deadlocks).

An edge A → B means "task A cannot go on until task B does something": A waits on a Lock or
Semaphore that B holds, or A awaits task B itself. A cycle means none of its tasks will ever go
on: a deadlock. A task waiting on a Lock it holds itself (asyncio locks are not reentrant) is a
cycle of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from inspector.model import Snapshot, TaskInfo, WaitInfo

LIVE_STATES = ("pending", "running")
HOLDER_KINDS = ("lock", "semaphore")
AWAIT_KINDS = ("task", "gather", "taskgroup")


@dataclass
class WaitGraph:
    """Edges between live tasks, with the wait that makes each edge."""

    tasks: dict[int, TaskInfo]
    edges: dict[int, list[int]] = field(default_factory=dict)
    reasons: dict[tuple[int, int], WaitInfo] = field(default_factory=dict)

    def add(self, waiter: int, blocker: int, reason: WaitInfo) -> None:
        targets = self.edges.setdefault(waiter, [])
        if blocker not in targets:
            targets.append(blocker)
            self.reasons[(waiter, blocker)] = reason


def build_wait_graph(snapshot: Snapshot) -> WaitGraph:
    """Edges from every live task's wait to the live tasks that can end it."""
    live = {task.id: task for task in snapshot.tasks if task.state in LIVE_STATES}
    graph = WaitGraph(tasks=live)
    for task in live.values():
        wait = task.waiting_on
        if wait is None:
            continue
        blockers: tuple[int, ...] = ()
        if wait.kind in HOLDER_KINDS:
            blockers = wait.holder_task_ids
        elif wait.kind in AWAIT_KINDS:
            blockers = wait.awaited_task_ids
        for blocker in blockers:
            if blocker in live:
                graph.add(task.id, blocker, wait)
    return graph


def find_cycles(graph: WaitGraph) -> list[tuple[int, ...]]:
    """Every deadlocked group, each as a cycle starting at its smallest task id.

    Strongly connected components (Tarjan, iterative so a long chain cannot hit the recursion
    limit) with more than one task, or one task with an edge to itself.
    """
    components = [
        component
        for component in _strongly_connected(graph)
        if len(component) > 1 or component[0] in graph.edges.get(component[0], [])
    ]
    cycles = [_as_cycle(graph, set(component)) for component in components]
    return sorted(cycles)


def _as_cycle(graph: WaitGraph, members: set[int]) -> tuple[int, ...]:
    """Order a component by following its edges from the smallest id, for a readable story."""
    start = min(members)
    order = [start]
    current = start
    while True:
        following = [n for n in graph.edges.get(current, []) if n in members and n not in order]
        if not following:
            break
        current = min(following)
        order.append(current)
    order.extend(sorted(members - set(order)))
    return tuple(order)


def _strongly_connected(graph: WaitGraph) -> Iterator[list[int]]:
    index_of: dict[int, int] = {}
    lowlink: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    counter = 0
    for root in sorted(graph.tasks):
        if root in index_of:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index_of[node] = lowlink[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = graph.edges.get(node, [])
            descended = False
            while position < len(successors):
                successor = successors[position]
                position += 1
                if successor not in index_of:
                    work.append((node, position))
                    work.append((successor, 0))
                    descended = True
                    break
                if successor in on_stack:
                    lowlink[node] = min(lowlink[node], index_of[successor])
            if descended:
                continue
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                yield sorted(component)

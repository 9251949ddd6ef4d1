"""Diagnosis: pure functions from a Snapshot to Findings a person acts on. No Textual here.

findings = diagnose(snapshot)            # worst first
findings = diagnose(snapshot, stuck_after=2.0)
"""

from __future__ import annotations

import dataclasses

from inspector.diagnose.findings import SEVERITY_ORDER, Finding
from inspector.diagnose.rules import RULES, Settings
from inspector.diagnose.rules.tasks import stuck_tasks
from inspector.diagnose.wait_graph import LIVE_STATES
from inspector.model import Snapshot

CONFIRMATION_MARGIN = 0.2
"""Seconds added to a confirmation wait so the suspects are past the threshold, not on it."""

KIND_ORDER = {kind: position for position, kind in enumerate(RULES)}

CHECKED_CAPABILITIES = ("stalls", "requests", "background", "threadpool", "exceptions", "stacks")
"""What the rules look at, beyond tasks."""


def unchecked(snapshot: Snapshot) -> str | None:
    """What the diagnosis could not look at in `snapshot`, and why, in words; None: nothing."""
    missing = [c for c in CHECKED_CAPABILITIES if c not in snapshot.capabilities]
    if not missing:
        return None
    waiting = [c for c in missing if c in snapshot.health.waiting_for_loop]
    others = [c for c in missing if c not in waiting]
    said = []
    if waiting:
        said.append(
            f"this source cannot report {', '.join(waiting)} yet (the injected agent's probes "
            "are waiting for the blocked loop to come back)"
        )
    if others:
        why = (
            "its agent runs with --no-lifecycle, or a probe failed"
            if snapshot.by_agent
            else "it has no inspector agent"
        )
        said.append(f"this source cannot report {', '.join(others)} ({why})")
    return "; ".join(said)


def unknown_starts(snapshot: Snapshot) -> str | None:
    """The one sentence about requests already running when the agent was injected (their
    start is unknown); None when there are none."""
    count = sum(1 for request in snapshot.requests if request.start_unknown)
    if not count:
        return None
    if count == 1:
        return (
            "1 request was in flight before the agent was injected: its start time is unknown, "
            "its age counts from the injection"
        )
    return (
        f"{count} requests were in flight before the agent was injected: their start times are "
        "unknown, their ages count from the injection"
    )


def diagnose(snapshot: Snapshot, *, stuck_after: float = 5.0) -> list[Finding]:
    """Every finding of every rule, worst first, then the most frequent, then by rule order.

    A rule that fails on an odd snapshot is skipped rather than taking the others down: a
    diagnosis with one check missing beats none.
    """
    settings = Settings(stuck_after=stuck_after)
    findings: list[Finding] = []
    for rule in RULES.values():
        try:
            findings.extend(rule(snapshot, settings))
        except Exception as error:  # noqa: BLE001 - see docstring
            findings.append(_rule_failed(rule.__name__, error))
    return sort_findings(findings)


def confirmation_delay(snapshot: Snapshot, *, stuck_after: float = 5.0) -> float:
    """Seconds to wait before a fresh snapshot can confirm tasks that look stuck but are young.

    The agent dates a task from the first snapshot that saw it, so on first contact every task
    is "0 s old" and no wait is long enough to call stuck. A task whose wait would make it a
    `stuck-task` if it were old enough is a suspect; watching it for `stuck_after` seconds
    settles it. Returns 0 when there is no suspect.
    """
    settings = Settings(stuck_after=stuck_after)
    young = {
        task.id: task.age or 0.0
        for task in snapshot.tasks
        if task.state in LIVE_STATES and (task.age is None or task.age <= stuck_after)
    }
    if not young:
        return 0.0
    aged = dataclasses.replace(
        snapshot,
        tasks=tuple(
            dataclasses.replace(task, age=stuck_after + 1.0) if task.id in young else task
            for task in snapshot.tasks
        ),
    )
    suspects = [young[t] for f in stuck_tasks(aged, settings) for t in f.task_ids if t in young]
    if not suspects:
        return 0.0
    return stuck_after - min(suspects) + CONFIRMATION_MARGIN


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(
        findings,
        key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), -f.count, KIND_ORDER.get(f.kind, 99)),
    )


def _rule_failed(name: str, error: Exception) -> Finding:
    return Finding(
        kind="diagnosis-error",
        severity="info",
        title=f"The check {name} could not run on this snapshot",
        detail=f"{type(error).__name__}: {error}",
        hint="Please report this with the snapshot (`inspector dump --out FILE`).",
    )


__all__ = ["Finding", "Settings", "confirmation_delay", "diagnose", "sort_findings"]

"""The Finding: what is wrong, where to fix it, and how. Its JSON form is a public contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from inspector.model import Frame

Severity = Literal["critical", "warning", "info"]
SEVERITY_ORDER: Final[dict[str, int]] = {"critical": 0, "warning": 1, "info": 2}

KINDS: Final = (
    "loop-blocked",
    "hanging-request",
    "stuck-task",
    "deadlock",
    "background-failed",
    "background-not-run",
    "background-skipped",
    "task-exception-unretrieved",
    "coroutine-never-awaited",
    "threadpool-saturated",
    "exception-swallowed",
    "logged-error",
    "sync-async-deadlock",
    "lock-contention",
    "task-destroyed-pending",
    "task-leak",
    "cancellation-swallowed",
    "pool-exhausted",
    "loop-saturated",
)
"""Kinds scripts depend on: add new ones, never rename these."""


@dataclass(frozen=True)
class Finding:
    """One problem, grouped: `count` identical occurrences make one finding."""

    kind: str
    severity: Severity
    title: str
    """One line: "Event loop blocked 2.0 s by time.sleep in GET /block"."""
    detail: str
    """What was seen, in sentences."""
    hint: str
    """How to fix it."""
    location: Frame | None = None
    """The innermost application frame: the line to fix."""
    related: tuple[Frame, ...] = ()
    task_ids: tuple[int, ...] = ()
    request: str | None = None
    """"GET /block" when the finding concerns a request."""
    count: int = 1
    worker: int | None = None
    """The worker pid, when a finding comes from one worker of several."""

    def to_json_dict(self) -> dict[str, Any]:
        """The contract form (`inspector doctor --json`)."""

        def loc(frame: Frame | None) -> dict[str, Any] | None:
            if frame is None:
                return None
            return {"file": frame.file, "line": frame.line, "function": frame.function}

        data: dict[str, Any] = {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "detail": self.detail,
            "hint": self.hint,
            "location": loc(self.location),
            "related": [loc(frame) for frame in self.related],
            "task_ids": list(self.task_ids),
            "request": self.request,
            "count": self.count,
        }
        if self.worker is not None:
            data["worker"] = self.worker
        return data

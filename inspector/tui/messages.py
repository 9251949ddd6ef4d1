"""Provides the app-wide messages: what the poller and the vitals sampler post to the app."""

from __future__ import annotations

from textual.message import Message

from inspector.protocol import Hello
from inspector.tui.poller import Observation
from inspector.tui.vitals import Vitals
from inspector.tui.workers import WorkerStatus


class SnapshotReceived(Message):
    """A new observation. Only the newest matters: a pending older one is dropped unseen
    (events are safe: the poller accumulated them into `observation.events` already)."""

    def __init__(self, observation: Observation, origin: object = None) -> None:
        super().__init__()
        self.observation = observation
        self.origin = origin
        """The source it came from: after a worker switch, the old source's late news is dropped."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReceived) and message.origin is self.origin


class SourceConnected(Message):
    def __init__(self, hello: Hello, origin: object = None) -> None:
        super().__init__()
        self.hello = hello
        self.origin = origin


class SourceDisconnected(Message):
    def __init__(
        self, reason: str, retry_in: float | None, ever_connected: bool, origin: object = None
    ) -> None:
        super().__init__()
        self.reason = reason
        self.retry_in = retry_in
        self.ever_connected = ever_connected
        self.origin = origin


class VitalsSampled(Message):
    def __init__(self, vitals: Vitals | None) -> None:
        super().__init__()
        self.vitals = vitals

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, VitalsSampled)


class OpenTask(Message):
    """A view asks to show one task in the Task detail view."""

    def __init__(self, task_id: int) -> None:
        super().__init__()
        self.task_id = task_id


class OpenRequest(Message):
    """A view asks to show one request in the Requests view."""

    def __init__(self, request_id: int) -> None:
        super().__init__()
        self.request_id = request_id


class OpenThread(Message):
    """A view asks to show one worker thread in the Threads view."""

    def __init__(self, thread_id: int) -> None:
        super().__init__()
        self.thread_id = thread_id


class WorkersUpdated(Message):
    """A new round of worker statuses from the fleet poller (only the newest matters)."""

    def __init__(self, statuses: list[WorkerStatus]) -> None:
        super().__init__()
        self.statuses = statuses

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, WorkersUpdated)


class SwitchWorker(Message):
    """A view asks to show another worker of the group in the main views."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid

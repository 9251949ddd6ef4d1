"""Provides the app-wide messages: what the poller and the vitals sampler post to the app."""

from __future__ import annotations

from textual.message import Message

from inspector.protocol import Hello
from inspector.tui.poller import Observation
from inspector.tui.vitals import Vitals


class SnapshotReceived(Message):
    """A new observation. Only the newest matters: a pending older one is dropped unseen
    (events are safe: the poller accumulated them into `observation.events` already)."""

    def __init__(self, observation: Observation) -> None:
        super().__init__()
        self.observation = observation

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReceived)


class SourceConnected(Message):
    def __init__(self, hello: Hello) -> None:
        super().__init__()
        self.hello = hello


class SourceDisconnected(Message):
    def __init__(self, reason: str, retry_in: float | None, ever_connected: bool) -> None:
        super().__init__()
        self.reason = reason
        self.retry_in = retry_in
        self.ever_connected = ever_connected


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

"""Provides the app-wide messages: what the pollers and the vitals sampler post to the app, and
what the views ask of it (open a task, a request or a thread; copy a location or open it in the
editor; switch worker).

Views never call the app: they post these, and the app, which owns the tabs and the clipboard,
decides.
"""

from __future__ import annotations

from textual.message import Message

from inspector.model import Frame
from inspector.protocol import Hello
from inspector.tui.poller import Connected, Disconnected, Fetched, Observation, PollEvent
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
    """The poller connected (or reconnected) and the target introduced itself."""

    def __init__(self, hello: Hello, origin: object = None) -> None:
        super().__init__()
        self.hello = hello
        self.origin = origin


class SourceDisconnected(Message):
    """The poller lost the target, or could not reach it; `retryable` False: it stopped."""

    def __init__(
        self,
        reason: str,
        retry_in: float | None,
        ever_connected: bool,
        origin: object = None,
        *,
        retryable: bool = True,
    ) -> None:
        super().__init__()
        self.reason = reason
        self.retry_in = retry_in
        self.ever_connected = ever_connected
        self.origin = origin
        self.retryable = retryable


class VitalsSampled(Message):
    """A new reading of the target's vitals; None when there is none (see the reason)."""

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


class CopyLocation(Message):
    """A view asks to copy a source line (file:line) to the clipboard."""

    def __init__(self, frame: Frame | None) -> None:
        super().__init__()
        self.frame = frame
        """None when there is no line under the cursor (the app says so)."""


class OpenInEditor(Message):
    """A view asks to open a source line in the user's editor."""

    def __init__(self, frame: Frame | None) -> None:
        super().__init__()
        self.frame = frame
        """None when there is no line under the cursor (the app says so)."""


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


def poll_message(event: PollEvent, origin: object) -> Message:
    """The message that carries a poller's event to the app (`post_message` is thread-safe).
    `origin` is the poller's source, so news from a worker switched away from is dropped."""
    if isinstance(event, Fetched):
        return SnapshotReceived(event.observation, origin)
    if isinstance(event, Connected):
        return SourceConnected(event.hello, origin)
    assert isinstance(event, Disconnected)
    return SourceDisconnected(
        event.reason, event.retry_in, event.ever_connected, origin, retryable=event.retryable
    )

"""Provides LinkedText: text whose links open a task, a request or a worker thread.

A link is written without a namespace, ``[@click=open_task(1057)]Task-1057[/]``: Textual runs a
link's action on the widget that shows it, and this one posts the matching message up to the
app, which owns the tabs. Views never call the app.
"""

from __future__ import annotations

from textual.widgets import Static

from inspector.tui.messages import OpenRequest, OpenTask, OpenThread


class LinkedText(Static):
    """A Static whose ``open_task``, ``open_request`` and ``open_thread`` links post messages."""

    def action_open_task(self, task_id: int) -> None:
        self.post_message(OpenTask(task_id))

    def action_open_request(self, request_id: int) -> None:
        self.post_message(OpenRequest(request_id))

    def action_open_thread(self, thread_id: int) -> None:
        self.post_message(OpenThread(thread_id))

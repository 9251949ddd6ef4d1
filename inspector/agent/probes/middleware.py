"""The pure-ASGI middleware that records each HTTP and WebSocket request for the agent.

`InspectorMiddleware` wraps the whole ASGI app (`inspector run` installs it through
`inspector.agent.probes.wrap_asgi`) before any agent exists. It finds the live state in
`tracker.active`, so with no agent running it costs one attribute read and one extra coroutine
frame per request. It is never a `BaseHTTPMiddleware`: that class runs the app in a separate
task, hides client disconnects and delays background work.

Every write on the request path is a single attribute or container operation, atomic under the
GIL, so no lock is taken. Phases: "handler" from the start; "receiving" while the app awaits the
request body before the response started; "sending" once the response started; "streaming" from
the first body chunk that announces more; "background" once the last body chunk is handed to
the server while the app has not returned yet (Starlette runs a response's background tasks
there); "done".
"""

from __future__ import annotations

from typing import Any, Final

from inspector.agent.probes import tracker as tracking
from inspector.agent.probes.current import current_request
from inspector.agent.probes.records import Receive, RequestRecord, Scope, Send

_TRACKED_SCOPES: Final = frozenset({"http", "websocket"})


class InspectorMiddleware:
    """Pure-ASGI middleware recording each HTTP and WebSocket request for the agent."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        # Servers and tests sometimes reach through the app (app.state, app.router, ...).
        try:
            app = self.__dict__["app"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracker = tracking.active
        if (
            tracker is None
            or scope["type"] not in _TRACKED_SCOPES
            or current_request.get() is not None  # wrapped twice: the outer one records
        ):
            await self.app(scope, receive, send)
            return
        request_id = next(tracker.ids)
        start = tracker.perf()
        if start >= tracker.window_end:
            tracker.new_window(start, request_id)
        if not next(tracker.turns):
            # No record for this one (see the module's docstring). Written out here: a helper
            # coroutine would cost as much as what it saves.
            light = tracker.light
            task = tracker.current_task()
            light[task] = (request_id, start, scope, receive)
            try:
                await self.app(scope, receive, send)
            except BaseException as exc:
                tracker.light_failed(task, exc)
                raise
            finally:
                entry = light.pop(task, None)
                if entry is not None and type(entry) is not tuple:
                    tracker.finish(entry)  # type: ignore[arg-type]  # given a record late
            return
        try:
            record = RequestRecord(
                request_id, start, scope, receive, send, tracker.clock(), tracker.current_task()
            )
            tracker.in_flight[request_id] = record
        except Exception as error:  # never let bookkeeping break the request
            tracker.report(f"request middleware: {error!r}")
            await self.app(scope, receive, send)
            return
        token = current_request.set(record.id)
        try:
            await self.app(scope, record.receive, record.send)
        except BaseException as exc:
            record.note_error(exc)
            tracker.remember_escaped(exc, record)
            raise
        finally:
            current_request.reset(token)
            try:
                tracker.finish(record)
            except Exception as error:
                tracker.report(f"request middleware: {error!r}")

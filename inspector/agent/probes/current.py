"""What the running code is working for: the request and the background job, as context variables.

The request middleware sets `current_request` for the duration of a request and the background
probe sets `current_job` while a Starlette background task runs. Context variables follow the
work wherever it goes: into tasks created while serving the request (asyncio copies the context
at task creation) and into anyio worker threads (anyio runs the function in a copy of the
caller's context). That is how a worker thread, a fire-and-forget task or a logged error is tied
back to the request that caused it, without any lookup table on the hot path.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inspector.agent.probes.background import JobRecord
    from inspector.agent.probes.requests import RequestRecord

current_request: ContextVar[RequestRecord | None] = ContextVar(
    "inspector_current_request", default=None
)
current_job: ContextVar[JobRecord | None] = ContextVar("inspector_current_job", default=None)

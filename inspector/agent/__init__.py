"""The in-process agent: runs inside the uvicorn server and answers the inspector's questions.

Two ways in:

* ``inspector run app:app`` installs it with no change to the app;
* ``app = inspector.agent.instrument(app)`` for people who start uvicorn themselves.

This package imports nothing at import time: its names are loaded on first use (PEP 562), so
``import inspector.agent`` costs nothing inside someone else's server, and aiomonitor (about
0.3 s to import) is loaded only when an agent is really wanted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspector.agent.agent import Agent, start_agent
    from inspector.agent.errors import AgentStartError
    from inspector.agent.instrumented import InstrumentedApp, instrument
    from inspector.agent.probe import AgentConfig

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentStartError",
    "InstrumentedApp",
    "instrument",
    "start_agent",
]

_LAZY = {
    "Agent": "inspector.agent.agent",
    "AgentStartError": "inspector.agent.errors",
    "InstrumentedApp": "inspector.agent.instrumented",
    "instrument": "inspector.agent.instrumented",
    "start_agent": "inspector.agent.agent",
    "AgentConfig": "inspector.agent.probe",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'inspector.agent' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

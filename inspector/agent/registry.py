"""The agents running in this process, so that what starts later can find the one that runs.

Usually there is one agent per server process. Metrics mounted on the app before the agent
started (`metrics_app()`) find it here, and an exit without lifespan (no shutdown event) still
closes every agent, which removes its registration file.
"""

from __future__ import annotations

import atexit
import threading
from typing import Protocol

from inspector.agent.probe import AgentConfig, AgentContext
from inspector.agent.snapshot import SnapshotBuilder


class LiveAgent(Protocol):
    """What the registry, and those who look an agent up in it, use of an agent."""

    @property
    def config(self) -> AgentConfig: ...

    @property
    def context(self) -> AgentContext: ...

    @property
    def snapshots(self) -> SnapshotBuilder: ...

    @property
    def slot_index(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...


_agents: list[LiveAgent] = []
_lock = threading.Lock()


def add(agent: LiveAgent) -> None:
    with _lock:
        _agents.append(agent)


def discard(agent: LiveAgent) -> None:
    with _lock:
        if agent in _agents:
            _agents.remove(agent)


def live_agents() -> list[LiveAgent]:
    """The agents started in this process and not closed yet (usually one)."""
    with _lock:
        return [agent for agent in _agents if not agent.closed]


def running_agent() -> LiveAgent | None:
    """The agent running in this process, when there is exactly one."""
    agents = live_agents()
    return agents[0] if len(agents) == 1 else None


@atexit.register
def _close_all() -> None:
    """Last resort for agents nobody closed (no lifespan): remove their registration files."""
    with _lock:
        agents = list(_agents)
    for agent in agents:
        agent.close()

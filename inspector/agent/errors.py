"""The agent's one start-up error, apart so that the port checks can raise it too."""

from __future__ import annotations


class AgentStartError(Exception):
    """The agent could not start; the message names the cause (a port, a host) for a person."""

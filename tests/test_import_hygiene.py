"""The agent runs inside someone else's server: importing it must not drag in the client side."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("textual", "rich", "inspector.tui", "inspector.client", "inspector.diagnose")


@pytest.mark.parametrize(
    "statement",
    [
        "import inspector.agent",
        "from inspector.agent import instrument, start_agent, AgentConfig",
        "import inspector.agent.agent, inspector.agent.probes, inspector.agent.tasks",
        "import inspector.agent.bootstrap",
    ],
)
def test_the_agent_imports_nothing_of_the_client_side(statement: str) -> None:
    code = f"{statement}; import sys; print([m for m in {HEAVY!r} if m in sys.modules])"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert output.strip() == "[]"


def test_importing_the_agent_package_loads_no_aiomonitor_until_started() -> None:
    code = "import inspector.agent, sys; print('aiomonitor' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert output.strip() == "False"


def test_instrument_stays_a_function_after_the_bootstrap_is_imported() -> None:
    """A submodule named like a public function would shadow it once imported."""
    import inspector.agent.bootstrap  # noqa: F401
    from inspector.agent import instrument

    assert callable(instrument) and not isinstance(instrument, type(sys))

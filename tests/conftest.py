"""Every test runs with a runtime directory of its own session.

Agents register themselves in the runtime directory and `ps`, `attach` and `--pid` read it: a
test that starts an agent without choosing a directory would otherwise write into the user's
own (`$XDG_RUNTIME_DIR/inspector`) and see the servers running on the machine. Tests that need a
particular directory still set `INSPECTOR_RUNTIME_DIR` themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from inspector.registration import ENV_RUNTIME_DIR


@pytest.fixture(autouse=True, scope="session")
def isolated_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get(ENV_RUNTIME_DIR)
    os.environ[ENV_RUNTIME_DIR] = str(tmp_path_factory.mktemp("runtime"))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV_RUNTIME_DIR, None)
        else:
            os.environ[ENV_RUNTIME_DIR] = previous

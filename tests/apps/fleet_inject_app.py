"""A plain ASGI app without the agent that runs a script on SIGUSR1, for the inject tests.

A Python signal handler runs on the main thread between two bytecodes, which is exactly where
Python 3.14's `sys.remote_exec` runs its script; on older Pythons this is how the bootstrap that
`inspector inject` sends is exercised in a real server. The script's path is in
``INSPECTOR_TEST_BOOTSTRAP``. The app itself is `fleet_app`'s, served from the same ``--app-dir``.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from fleet_app import app  # noqa: F401  (served from the same --app-dir)


def _run_bootstrap(signum: int, frame: Any) -> None:
    path = os.environ["INSPECTOR_TEST_BOOTSTRAP"]
    with open(path, encoding="utf-8") as handle:
        code = compile(handle.read(), path, "exec")
    exec(code, {"__name__": "__inspector_bootstrap__"})


signal.signal(signal.SIGUSR1, _run_bootstrap)

"""`inspector run -- COMMAND`: become COMMAND, with the agent in every uvicorn it starts.

``exec`` rather than a child process: the command keeps this pid, so a process manager's
signals reach it directly, its exit status is the command's, and nothing sits in between on
stdin, stdout or stderr.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from inspector.errors import ExitStatus, InspectorError


def exec_command(command: Sequence[str], config: Any, *, gc_freeze: bool) -> int:
    """Replace this process with `command`; returns only by raising InspectorError."""
    from inspector.commands.run import autoload_environment, check_ports_free, warn_if_remote

    if not command:
        raise InspectorError("nothing to run after --: give a command (-- uvicorn main:app)")
    program = command[0]
    if shutil.which(program) is None:
        raise InspectorError(f"command not found: {program}", ExitStatus.COMMAND_NOT_FOUND)
    environ = dict(os.environ)
    if config is not None:
        check_ports_free(config, 1)
        warn_if_remote(config)
        environ.update(autoload_environment(config, strict=False, gc_freeze=gc_freeze))
        where = "free ports" if config.port == 0 else f"{config.host}:{config.port} and up"
        print(
            f"inspector: the agent joins every uvicorn server of `{_shown(command)}` "
            f"({where}); list them with: inspector ps",
            file=sys.stderr,
            flush=True,
        )
    sys.stdout.flush()
    try:
        os.execvpe(program, list(command), environ)
    except PermissionError as error:
        raise InspectorError(
            f"cannot run {program}: {error.strerror}", ExitStatus.COMMAND_NOT_RUNNABLE
        ) from None
    except OSError as error:
        raise InspectorError(f"cannot run {program}: {error.strerror or error}") from None


def _shown(command: Sequence[str], limit: int = 60) -> str:
    text = " ".join(command)
    return text if len(text) <= limit else text[: limit - 1] + "…"

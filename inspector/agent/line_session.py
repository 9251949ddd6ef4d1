"""One termui session: a line in, its answer out, aiomonitor's click commands behind it.

Every client of the agent's port gets this session (`inspector.agent.termui_server` carries
it). A client whose telnet terminal type is `INSPECTOR_TERMINAL` (the inspector's own) is a
program: it gets a short banner, no echo and no prompt after a blank line, since a prompt there
would be taken for an answer. Anyone else (a person with ``telnet`` or ``nc``, aiomonitor's own
client) gets aiomonitor's banner and a plain ``monitor >>> `` prompt; their telnet client edits
and echoes each line itself, so no full-screen prompt runs in the server.

What a session may run is decided here, before click sees the line: the Python console is
never offered, and a read-only agent runs only the commands that look (`READ_ONLY_COMMANDS`);
`cancel`, `signal` and anything unknown are refused and counted in the agent's health.
"""

from __future__ import annotations

import asyncio
import contextvars
import shlex
from collections.abc import Callable
from typing import Any, Final, TextIO, cast

from inspector.agent.termui_server import TermuiConnection
from inspector.protocol import CMD_CANCEL, CMD_HELLO, CMD_SNAPSHOT, INSPECTOR_TERMINAL

COMMAND_DONE_TIMEOUT: Final = 30.0
"""Seconds a command may take to say it is done before the session moves on."""
TERMINAL_WAIT: Final = 0.5
"""Seconds to wait for a client to name its terminal type (``nc`` never does)."""
READ_ONLY_COMMANDS: Final = frozenset(
    {
        "help",
        "noop",
        "exit",
        "ps",
        "ps-terminated",
        "where",
        "where-terminated",
        "stacktrace",
        CMD_HELLO,
        CMD_SNAPSHOT,
        CMD_CANCEL,  # it refuses by itself, with a frame the client expects
    }
)
"""What a read-only agent runs: everything here only looks."""
NEVER_OFFERED: Final = {
    "console": "the Python console is not available through the inspector agent",
}


async def serve(
    monitor: Any,
    connection: TermuiConnection,
    *,
    read_only: bool,
    on_refused: Callable[[], None],
) -> None:
    """Run the lines typed on `connection` until it closes or the client says ``exit``."""
    from aiomonitor.context import current_monitor, current_stdout
    from prompt_toolkit.application.current import create_app_session
    from prompt_toolkit.input import DummyInput
    from prompt_toolkit.output.plain_text import PlainTextOutput

    terminal = await connection.wait_terminal(TERMINAL_WAIT)
    for_program = terminal == INSPECTOR_TERMINAL
    stdout = connection.stdout
    tokens = (current_monitor.set(monitor), current_stdout.set(stdout))
    try:
        # aiomonitor's ok/fail lines print through prompt_toolkit: to this client, as plain text.
        with create_app_session(input=DummyInput(), output=PlainTextOutput(cast(TextIO, stdout))):
            connection.write_text(_banner(monitor, for_program) + monitor.prompt)
            while (line := await connection.next_line()) is not None:
                if line.strip():
                    why = refusal(line, read_only)
                    if why is None:
                        await _run_command(monitor, line, connection)
                    else:
                        on_refused()
                        connection.write_text(f"✗ {why}\n")
                    await connection.drain()
                elif for_program:
                    continue  # nothing to answer, and a prompt would read as an answer
                connection.write_text(monitor.prompt)
    finally:
        current_stdout.reset(tokens[1])
        current_monitor.reset(tokens[0])


def _banner(monitor: Any, for_program: bool) -> str:
    if for_program:
        return "\nAsyncio Monitor: inspector session\n"
    try:
        count = len(asyncio.all_tasks(monitor._monitored_loop))
    except (AttributeError, RuntimeError):  # the set changed under us: the count is a nicety
        return "\nAsyncio Monitor\nType help for available commands\n"
    plural = "" if count == 1 else "s"
    return f"\nAsyncio Monitor: {count} task{plural} running\nType help for available commands\n"


def command_name(line: str) -> str | None:
    """The command a line runs, aliases resolved (``ca`` is ``cancel``); None if unknown."""
    from aiomonitor.termui.commands import monitor_cli

    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if not words:
        return None
    command = monitor_cli.get_command(None, words[0])
    return str(command.name) if command is not None else None


def refusal(line: str, read_only: bool) -> str | None:
    """Why the line must not run, or None when it may."""
    name = command_name(line)
    if name in NEVER_OFFERED:
        return NEVER_OFFERED[name]
    if read_only and name is not None and name not in READ_ONLY_COMMANDS:
        return f"refused: the agent is read-only ({name} acts on the server)"
    return None  # an unknown command gets click's own "No such command"


async def _run_command(monitor: Any, line: str, connection: TermuiConnection) -> None:
    import click
    from aiomonitor.context import command_done
    from aiomonitor.termui.commands import monitor_cli

    done = asyncio.Event()
    token = command_done.set(done)
    try:
        args = shlex.split(line)
        contextvars.copy_context().run(
            monitor_cli.main, args, prog_name="", obj=monitor, standalone_mode=False
        )
        await asyncio.wait_for(done.wait(), COMMAND_DONE_TIMEOUT)
    except (click.ClickException, ValueError) as error:  # usage errors, unbalanced quotes
        connection.write_text(f"✗ {error}\n")
    except asyncio.TimeoutError:
        connection.write_text("✗ the command did not finish\n")
    except asyncio.CancelledError:
        raise  # `exit`, or the monitor closing: the session ends
    except Exception as error:  # a command's bug must not end the session
        connection.write_text(f"✗ {type(error).__name__}: {error}\n")
    finally:
        command_done.reset(token)

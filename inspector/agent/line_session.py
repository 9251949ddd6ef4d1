"""A line-mode termui session for inspector clients: one line in, one answer out.

aiomonitor gives every telnet connection a full prompt_toolkit prompt. For a program that types
a command and reads one frame back that is costly: 1.8 ms of CPU per command (half of it
redrawing the prompt) and a dozen system calls, each of which hands the GIL back and forth with
the app loop. A client whose telnet terminal type is `INSPECTOR_TERMINAL` (the inspector's own
client) gets this session instead: the same click commands of aiomonitor's termui, a plain
``monitor >>> `` prompt, and no screen. Any other client (a person with telnet, an older
inspector) gets aiomonitor's prompt.
"""

from __future__ import annotations

import asyncio
import contextvars
import shlex
from typing import Any, Final

from inspector.protocol import INSPECTOR_TERMINAL

COMMAND_DONE_TIMEOUT: Final = 30.0
"""Seconds a command may take to say it is done before the session moves on."""
MAX_LINE_CHARS: Final = 4096


def wants_line_session(connection: Any) -> bool:
    """Whether the client of this prompt_toolkit telnet connection is an inspector client."""
    output = getattr(connection, "vt100_output", None)
    return getattr(output, "term", None) == INSPECTOR_TERMINAL


async def serve_lines(monitor: Any, connection: Any) -> None:
    """Run commands typed on `connection` until it closes (aiomonitor's `interact`, minus the
    prompt_toolkit application)."""
    from aiomonitor.context import command_done, current_monitor, current_stdout
    from prompt_toolkit.keys import Keys

    stdout = connection.stdout
    source = connection.vt100_input
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    typed: list[str] = []
    typed_chars = 0

    def read_input() -> None:
        nonlocal typed_chars
        for press in source.read_keys():
            if press.key == Keys.BracketedPaste or (
                isinstance(press.key, str) and len(press.key) == 1
            ):
                typed.append(press.data)
                typed_chars += len(press.data)
                if typed_chars > MAX_LINE_CHARS:
                    typed.clear()  # a runaway line is dropped, not buffered
                    typed_chars = 0
            elif press.key in (Keys.ControlM, Keys.ControlJ):
                lines.put_nowait("".join(typed))
                typed.clear()
                typed_chars = 0
            elif press.key == Keys.ControlD:
                lines.put_nowait(None)
        if source.closed:
            lines.put_nowait(None)

    def write(text: str) -> None:
        stdout.write(text)
        stdout.flush()

    tokens = (current_monitor.set(monitor), current_stdout.set(stdout))
    try:
        with source.attach(read_input):
            write(f"\nAsyncio Monitor: inspector session\n{monitor.prompt}")
            while True:
                line = await lines.get()
                if line is None:
                    return
                if not line.strip():
                    # Nothing to answer: a prompt here would be taken for the next command's
                    # answer by a client that is waiting for one.
                    continue
                await _run_command(monitor, line, command_done, write)
                write(monitor.prompt)
    except asyncio.CancelledError:
        # The monitor is closing. Ending quietly, as aiomonitor's own session does: anything
        # raised here is printed on the server's terminal by prompt_toolkit.
        return
    except OSError:  # the client went away mid-write
        return
    finally:
        current_stdout.reset(tokens[1])
        current_monitor.reset(tokens[0])


async def _run_command(monitor: Any, line: str, command_done: Any, write: Any) -> None:
    import click
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
        write(f"✗ {error}\n")
    except asyncio.TimeoutError:
        write("✗ the command did not finish\n")
    except asyncio.CancelledError:
        raise
    except Exception as error:  # a command's bug must not end the session
        write(f"✗ {type(error).__name__}: {error}\n")
    finally:
        command_done.reset(token)

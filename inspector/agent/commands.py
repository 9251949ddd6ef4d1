"""The termui commands the agent adds to aiomonitor: hello, snapshot, cancel.

They run on aiomonitor's UI thread (its own loop), so they answer while the app loop is blocked.
Each answers with exactly one frame (`inspector.protocol`): the payload, or an ``error`` frame
with the reason. Nothing a command does may print a traceback on the terminal or raise into
aiomonitor, because a client parsing frames would hang waiting for one.

A frame is queued on the connection without blocking; the session then gives the client a
deadline to take it (`inspector.agent.termui_server`), so a client that stops reading is
disconnected instead of freezing the agent's thread, every other client and the shutdown.

Importing this module registers the commands on `aiomonitor.monitor_cli` (a process-wide group).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

import click
from aiomonitor.context import current_stdout
from aiomonitor.termui import commands as termui

from inspector import protocol
from inspector.agent.budget import CpuBudget
from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions
from inspector.agent.snapshot import SnapshotBuilder
from inspector.agent.termui_server import TermuiConnection
from inspector.protocol import Encoding, Hello, Result

_LENIENT: Final = {"ignore_unknown_options": True, "allow_extra_args": True}

# aiomonitor is untyped; these are its decorators with the types they have.
_Decorator = Callable[[Callable[..., None]], Callable[..., None]]
_termui_command = cast(Callable[..., _Decorator], termui.monitor_cli.command)
_command_done = cast(_Decorator, termui.auto_command_done)
_help_option = cast(_Decorator, termui.custom_help_option)


class CommandTarget(Protocol):
    """What the commands need of the agent they answer for (`inspector.agent.agent.Agent`)."""

    @property
    def config(self) -> AgentConfig: ...

    @property
    def context(self) -> AgentContext: ...

    @property
    def budget(self) -> CpuBudget: ...

    @property
    def snapshots(self) -> SnapshotBuilder: ...

    def hello(self) -> Hello: ...


class CommandError(Exception):
    """A command was used wrongly; the message goes back in an ``error`` frame."""


# --- the commands ----------------------------------------------------------------------------


@_termui_command(name=protocol.CMD_HELLO, context_settings=_LENIENT)
@_help_option
@_command_done
def do_hello(ctx: click.Context) -> None:
    """Introduce the inspector agent (versions, process, capabilities)."""
    _answer(ctx, lambda agent: protocol.encode_message("hello", agent.hello()))


@_termui_command(name=protocol.CMD_SNAPSHOT, context_settings=_LENIENT)
@click.option("--no-stacks", is_flag=True, help="Leave out task stacks (cheaper).")
@click.option("--max-tasks", default=None, help="Report at most N tasks.")
@click.option("--enc", default="json", help="json (default) or zjson (compressed).")
@_help_option
@_command_done
def do_snapshot(ctx: click.Context, no_stacks: bool, max_tasks: str | None, enc: str) -> None:
    """Everything the agent knows, as one framed JSON snapshot."""
    if enc not in ("json", "zjson"):
        _answer_error(f"unknown encoding {enc[:20]!r} (use json or zjson)")
        return
    encoding: Encoding = "json" if enc == "json" else "zjson"

    def encode(agent: CommandTarget) -> str:
        options = CollectOptions(with_stacks=not no_stacks, max_tasks=_parse_max_tasks(max_tasks))
        return agent.snapshots.shared(options, encoding)

    _answer(ctx, encode)


@_termui_command(name=protocol.CMD_CANCEL, context_settings=_LENIENT)
@click.argument("task_id", required=False)
@_help_option
@_command_done
def do_cancel(ctx: click.Context, task_id: str | None) -> None:
    """Cancel one task of the app loop by id (refused when the agent is read-only)."""

    def cancel(agent: CommandTarget) -> str:
        agent.snapshots.forget()  # the next snapshot shows the cancellation
        return protocol.encode_message("result", cancel_task(agent, task_id))

    _answer(ctx, cancel)


# --- what the commands do --------------------------------------------------------------------


def cancel_task(agent: CommandTarget, task_id_text: str | None) -> Result:
    """Request cancellation of a task on its own loop; the answer says whether it was found."""
    if agent.config.read_only:
        return Result(ok=False, message="agent is read-only")
    if task_id_text is None:
        raise CommandError("usage: inspector-cancel TASK_ID")
    try:
        task_id = int(task_id_text)
    except ValueError:
        raise CommandError(f"task id must be an integer, got {task_id_text[:40]!r}") from None
    loop = agent.context.loop
    task = _find_task(loop, task_id)
    if task is None:
        return Result(ok=False, message=f"no task with id {task_id}")
    if task.done():
        return Result(ok=False, message=f"task {task_id} ({task.get_name()}) already finished")
    loop.call_soon_threadsafe(task.cancel)
    return Result(ok=True, message=f"cancellation requested for task {task_id} ({task.get_name()})")


def _find_task(loop: asyncio.AbstractEventLoop, task_id: int) -> asyncio.Task[Any] | None:
    for _ in range(10):  # the set can change under us: the app loop runs on another thread
        try:
            tasks = list(asyncio.all_tasks(loop))
        except RuntimeError:
            continue
        return next((task for task in tasks if id(task) == task_id), None)
    raise CommandError("could not read the task list (it kept changing); try again")


def _parse_max_tasks(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"--max-tasks needs an integer, got {text[:20]!r}") from None
    if value < 0:
        raise CommandError("--max-tasks must not be negative")
    return value


# --- answering -------------------------------------------------------------------------------


def _answer(ctx: click.Context, encode: Callable[[CommandTarget], str]) -> None:
    """Send the frame `encode(agent)` makes; every failure becomes an ``error`` frame."""
    agent = _agent_of(ctx)
    if agent is None:
        _answer_error("this aiomonitor has no inspector agent")
        return
    if ctx.args:
        _answer_error(f"unexpected arguments: {' '.join(ctx.args)[:80]}")
        return
    try:
        agent.budget.pace()
        text = encode(agent)
    except CommandError as error:
        _answer_error(str(error))
        return
    except Exception as error:
        agent.context.record_error(f"{ctx.info_name}: {error!r}")
        _answer_error(f"the agent failed: {type(error).__name__}: {str(error)[:200]}")
        return
    try:
        write_frame(text)
    except Exception as error:
        agent.context.record_error(f"writing a frame: {error!r}")


def _answer_error(message: str) -> None:
    try:
        write_frame(protocol.encode_message("error", Result(ok=False, message=message)))
    except Exception:  # the client is gone: nothing left to tell
        pass


def _agent_of(ctx: click.Context) -> CommandTarget | None:
    return getattr(ctx.obj, "inspector_agent", None)


def write_frame(text: str) -> None:
    """Queue one frame on the current termui connection (the session then waits, with a
    deadline, for the client to take it)."""
    out = current_stdout.get()
    data = (text + "\r\n").encode("ascii")
    connection = getattr(out, "connection", None)
    if isinstance(connection, TermuiConnection):
        connection.write_frame(data)
    else:  # a stdout of someone else's (a test calling a command directly)
        out.write(text + "\n")
        out.flush()


__all__ = ["CommandError", "CommandTarget", "cancel_task", "write_frame"]

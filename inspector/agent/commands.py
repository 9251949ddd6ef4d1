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
import dataclasses
import json
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

import click
from aiomonitor.context import current_stdout
from aiomonitor.termui import commands as termui

from inspector import model, protocol
from inspector.agent.probe import CollectOptions
from inspector.agent.termui_server import TermuiConnection
from inspector.collector import collector_paused
from inspector.model import Snapshot
from inspector.protocol import Encoding, Result

if TYPE_CHECKING:
    from inspector.agent.agent import Agent

SNAPSHOT_TTL: Final = 0.15
"""Seconds a built snapshot is served again to other clients asking for the same variant."""
_shared: weakref.WeakKeyDictionary[Agent, dict[tuple[bool, int | None, str], tuple[float, str]]]
_shared = weakref.WeakKeyDictionary()
_SNAPSHOT_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(Snapshot))
_RESERVED_FIELDS: Final = frozenset({"process", "taken_at", "health", "capabilities", "source"})
_LENIENT: Final = {"ignore_unknown_options": True, "allow_extra_args": True}

# aiomonitor is untyped; these are its decorators with the types they have.
_Decorator = Callable[[Callable[..., None]], Callable[..., None]]
_termui_command = cast(Callable[..., _Decorator], termui.monitor_cli.command)
_command_done = cast(_Decorator, termui.auto_command_done)
_help_option = cast(_Decorator, termui.custom_help_option)


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

    def encode(agent: Agent) -> str:
        options = CollectOptions(with_stacks=not no_stacks, max_tasks=_parse_max_tasks(max_tasks))
        return shared_snapshot(agent, options, encoding)

    _answer(ctx, encode)


@_termui_command(name=protocol.CMD_CANCEL, context_settings=_LENIENT)
@click.argument("task_id", required=False)
@_help_option
@_command_done
def do_cancel(ctx: click.Context, task_id: str | None) -> None:
    """Cancel one task of the app loop by id (refused when the agent is read-only)."""

    def cancel(agent: Agent) -> str:
        _forget_snapshots(agent)  # the next snapshot shows the cancellation
        return protocol.encode_message("result", cancel_task(agent, task_id))

    _answer(ctx, cancel)


# --- what the commands do --------------------------------------------------------------------


def shared_snapshot(agent: Agent, options: CollectOptions, enc: Encoding = "json") -> str:
    """The framed snapshot, shared by every client asking within `SNAPSHOT_TTL` seconds.

    Building and encoding a snapshot is the agent's most expensive work, and it holds the GIL
    the server needs; twenty clients polling at 10 Hz would otherwise cost twenty snapshots
    per tenth of a second. Commands run one at a time on aiomonitor's thread, so a plain dict
    suffices; each entry is the newest frame for one (stacks, max tasks, encoding) variant.
    """
    key = (options.with_stacks, options.max_tasks, enc)
    now = time.monotonic()
    cache = _shared.get(agent)
    if cache is None:
        cache = _shared[agent] = {}
    entry = cache.get(key)
    if entry is not None and 0.0 <= now - entry[0] < SNAPSHOT_TTL:
        return entry[1]
    with collector_paused():
        text = encode_snapshot(agent, options, enc)
    cache[key] = (time.monotonic(), text)
    return text


def _forget_snapshots(agent: Agent) -> None:
    _shared.pop(agent, None)


def encode_snapshot(agent: Agent, options: CollectOptions, enc: Encoding = "json") -> str:
    """The framed snapshot; a part that cannot be encoded is dropped, not the whole snapshot."""
    snapshot = build_snapshot(agent, options)
    try:
        return protocol.encode_message("snapshot", snapshot, enc)
    except (TypeError, ValueError, RecursionError) as error:
        agent.context.record_error(f"snapshot did not encode ({error!r}); dropping bad parts")
    return protocol.encode_message("snapshot", build_snapshot(agent, options, check=True), enc)


def build_snapshot(agent: Agent, options: CollectOptions, *, check: bool = False) -> Snapshot:
    """Ask every probe for its part and merge the parts into one Snapshot.

    A probe that raises, or returns something that is not a Snapshot field, is reported in the
    snapshot's health and left out; the other parts still arrive. With `check`, each part is
    test-encoded first and left out when it does not encode.
    """
    context = agent.context
    started = time.perf_counter()
    parts: dict[str, Any] = {}
    working: list[str] = []
    for probe in agent.probes:
        name = getattr(probe, "name", type(probe).__name__)
        try:
            part = probe.collect(context, options)
        except Exception as error:
            context.record_error(f"{name}: collect failed: {error!r}")
            continue
        if not isinstance(part, Mapping):
            context.record_error(f"{name}: collect returned {type(part).__name__}, not a mapping")
            continue
        for key, value in part.items():
            if key not in _SNAPSHOT_FIELDS or key in _RESERVED_FIELDS:
                context.record_error(f"{name}: unknown snapshot field {str(key)[:40]!r}")
            elif check and not _encodes(value):
                context.record_error(f"{name}: its {key!r} cannot be encoded")
            else:
                parts[key] = value
        working.append(name)
    process = agent.process_info()
    collect_seconds = time.perf_counter() - started
    return Snapshot(
        process=process,
        taken_at=context.clock(),
        health=context.health(tuple(working), collect_seconds, agent.budget.paused_seconds),
        capabilities=agent.capabilities(),
        **parts,
    )


def _encodes(value: Any) -> bool:
    try:
        json.dumps(model.to_json_dict(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def cancel_task(agent: Agent, task_id_text: str | None) -> Result:
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


def _answer(ctx: click.Context, encode: Callable[[Agent], str]) -> None:
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


def _agent_of(ctx: click.Context) -> Agent | None:
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


def snapshot_fields() -> frozenset[str]:
    """The Snapshot fields a probe may fill."""
    return _SNAPSHOT_FIELDS - _RESERVED_FIELDS


__all__ = [
    "CommandError",
    "build_snapshot",
    "encode_snapshot",
    "shared_snapshot",
    "cancel_task",
    "snapshot_fields",
    "write_frame",
]

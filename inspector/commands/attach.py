"""`inspector attach`: the live terminal UI on a running server, or on a saved snapshot."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any, Final

from inspector.commands.target_args import add_target_arguments
from inspector.errors import ExitStatus, InspectorError

if TYPE_CHECKING:
    from inspector.client.source import Source
    from inspector.tui.workers import WorkerGroup

DESCRIPTION: Final = """\
Open the live terminal UI: what is wrong (findings with the file:line to fix), every asyncio
task and what it waits for, the requests in flight, background jobs, the threadpool, event-loop
stalls and the exceptions nobody saw.

TARGET is the agent's address (HOST:PORT, PORT, [IPv6]:PORT) or a saved snapshot file (opened
offline, with the same views). With no TARGET, the agent on 127.0.0.1:20101; if nothing answers
there, a list of the servers on this machine to choose from.
"""

EPILOG: Final = """\
keys: 1-8 views · / filter · enter open · x cancel a task · c copy file:line · s save
      9 workers · w/W next/previous worker (attached to a parent of --workers N)
      p pause · +/- interval · ? help · ctrl+p commands · q quit

examples:
  inspector attach                  the agent on 127.0.0.1:20101, else choose a server
  inspector attach 20104            the agent on 127.0.0.1:20104
  inspector attach --pid 4242       the agent of process 4242; for the parent of
                                    `--workers N`, its first worker, w to switch;
                                    a server without one: offers to inject it
  inspector attach --pid 4242 --inject   inject without asking (see `inspector inject`)
  inspector attach stuck.json       a snapshot saved with `s` or `inspector dump -o`
"""


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError("expected a number of seconds from 0.1 to 3600")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "attach",
        help="open the live terminal UI on a running server (or a saved snapshot)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--interval",
        type=positive_seconds,
        default=1.0,
        metavar="S",
        help="seconds between snapshots (default 1; +/- change it live)",
    )
    parser.add_argument(
        "--stuck-after",
        type=positive_seconds,
        default=5.0,
        metavar="S",
        help="a task or request waiting longer than this is reported (default 5)",
    )
    parser.add_argument(
        "--inject",
        action="store_true",
        help="with --pid: start the agent in a server that has none without asking "
        "(as `inspector inject PID`)",
    )
    parser.set_defaults(handler=handle)


def _need_textual() -> None:
    """The UI is an extra (a server image needs only the agent): say how to get it."""
    import importlib.util

    try:
        available = importlib.util.find_spec("textual") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        available = False
    if not available:
        raise InspectorError(
            "the live UI needs Textual, which is not installed: "
            "pip install 'uvicorn-inspector[ui]' (dump, doctor and ps work without it)"
        )


def handle(args: argparse.Namespace) -> int:
    from inspector.client.source import ConnectError
    from inspector.client.target import open_source

    _need_textual()
    if args.inject and (args.pid is None or args.target is not None):
        raise InspectorError("--inject goes with --pid PID (the server to start the agent in)")
    if args.pid is not None and args.target is None:
        group = _worker_group(args.pid)
        if group is not None:
            return _attach_to_group(group, args)
    try:
        source = open_source(args.target, args.pid)
    except ConnectError as no_agent:
        if args.pid is None or args.target is not None:
            raise
        from inspector.commands.attach_inject import offer_injection

        source = offer_injection(
            args.pid, no_agent, ask=not args.inject, need_terminal=_need_terminal
        )
    try:
        _check(source)
    except ConnectError:
        if args.target is not None or args.pid is not None:
            raise
        _need_terminal()
        chosen = _choose_source()
        if chosen is None:
            return ExitStatus.OK
        source = chosen
    _need_terminal()

    from inspector.tui.app import make_app

    app = make_app(source, interval=args.interval, stuck_after=args.stuck_after)
    return int(app.run() or 0)


def _worker_group(pid: int) -> WorkerGroup | None:
    from inspector.tui.workers import find_worker_group

    try:
        return find_worker_group(pid)
    except (ImportError, OSError):  # no discovery here: the plain --pid lookup says why
        return None


def _attach_to_group(group: WorkerGroup, args: argparse.Namespace) -> int:
    """Open the UI on the first worker that answers, with the worker switcher."""
    from inspector.client.source import ConnectError

    failures: list[str] = []
    for worker in group.initial:
        source = group.source_factory(worker.address)
        try:
            _check(source)
        except (ConnectError, InspectorError) as error:
            failures.append(f"pid {worker.pid}: {error}")
            continue
        _need_terminal()
        from inspector.tui.app import make_app

        app = make_app(source, interval=args.interval, stuck_after=args.stuck_after, group=group)
        return int(app.run() or 0)
    raise InspectorError(f"no worker of pid {group.parent_pid} answers: " + "; ".join(failures))


def _need_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InspectorError(
            "attach needs a terminal; use `inspector dump` or `inspector doctor` in scripts"
        )


def _check(source: Source) -> None:
    """Connect once before the screen opens, so a wrong address is one line, not a blank UI."""
    from inspector.protocol import ProtocolError

    async def probe() -> None:
        try:
            await source.connect()
        finally:
            await source.close()

    try:
        asyncio.run(probe())
    except ProtocolError as error:
        raise InspectorError(f"{source.address}: {error}") from None


def _choose_source() -> Source | None:
    from inspector.client.target import open_source
    from inspector.tui.picker import list_candidates, pick_target

    candidates = list_candidates()
    if not candidates:
        raise InspectorError(
            "nothing to attach to: no agent answers on 127.0.0.1:20101 and no uvicorn server runs "
            "here; start one with `inspector run app:app`"
        )
    choice = pick_target(candidates)
    if choice is None:
        return None
    if choice.inject_pid is not None:
        from inspector.commands import inject

        pid = choice.inject_pid
        host, port = inject.start(pid, inject.check_target(pid))
        source = open_source(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", None)
    else:
        source = open_source(choice.address, None)
    _check(source)
    return source

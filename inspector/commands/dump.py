"""`inspector dump`: print one snapshot of a running server, as text or as a saved-file JSON."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from inspector.commands.target_args import add_inject_argument, add_target_arguments
from inspector.errors import InspectorError

if TYPE_CHECKING:
    from inspector.client.source import Source
    from inspector.model import Snapshot

DEFAULT_TIMEOUT: Final = 10.0

DESCRIPTION: Final = """\
Take one snapshot of a running server and print it: every task with its await chain and what
it waits for, the requests in flight, event-loop stalls with the line that blocked, background
jobs, the threadpool, and exceptions nobody saw.

TARGET is the agent's address (HOST:PORT, PORT, [IPv6]:PORT; default 127.0.0.1:20101) or a
snapshot file saved earlier with --format json or -o, which is read back instead.
"""

EPILOG: Final = """\
examples:
  inspector dump                         the agent on 127.0.0.1:20101, as text
  inspector dump 20104                   the agent on 127.0.0.1:20104
  inspector dump --pid 4242              the agent of process 4242
  inspector dump --pid 4242 --inject     the same, starting an agent in it if it has none
  inspector dump -o stuck.json           save a snapshot to read later (dump, attach, doctor)
  inspector dump stuck.json              print a saved snapshot as text
  inspector dump --format json | jq '.snapshot.tasks | length'

exit status: 0 printed, 2 could not connect or bad input.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dump",
        help="print one snapshot of a running server (or a saved one)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(parser, pid_help="the process to dump (found through its agent)")
    add_inject_argument(parser)
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        help="text for people, json for files and scripts "
        "(default: text, or json when writing a file with -o)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE (atomically) instead of stdout",
    )
    parser.add_argument(
        "--no-stacks",
        action="store_true",
        help="leave out task stacks (faster and much smaller with many tasks)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"give up after S seconds without a snapshot (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text format (auto: when stdout is a terminal and NO_COLOR is unset)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not args.timeout > 0:
        raise InspectorError("--timeout must be a positive number of seconds")
    snapshot = asyncio.run(_take(args))
    fmt = args.format or ("json" if args.output else "text")
    if fmt == "json":
        text = _encode(snapshot)
    else:
        from inspector.render import render_snapshot

        text = _with_injection_note(snapshot, render_snapshot(snapshot, color=_use_color(args)))
    if args.output:
        write_atomically(Path(args.output), text)
    elif fmt == "json":
        _print_json(text)
    else:
        _print(text)
    return 0


def _with_injection_note(snapshot: Snapshot, text: str) -> str:
    """Say once, under the header, that requests older than an injected agent are timed from
    the injection."""
    from inspector.diagnose import unknown_starts

    note = unknown_starts(snapshot)
    if note is None:
        return text
    header, blank, rest = text.partition("\n\n")
    return f"{header}\n  note: {note}{blank}{rest}"


async def _take(args: argparse.Namespace) -> Snapshot:
    from inspector.commands.attach_inject import open_or_inject

    connect_timeout = min(3.0, args.timeout)
    source = open_or_inject(
        args.target,
        args.pid,
        inject=args.inject,
        connect_timeout=connect_timeout,
        command_timeout=args.timeout,
    )
    try:
        # Belt and braces: each step has its own timeout; this bounds them together.
        return await asyncio.wait_for(
            _connect_and_take(source, not args.no_stacks), args.timeout + connect_timeout
        )
    except asyncio.TimeoutError:
        raise InspectorError(
            f"no snapshot from {source.address} within {args.timeout:g} s"
        ) from None
    finally:
        await source.close()


async def _connect_and_take(source: Source, with_stacks: bool) -> Snapshot:
    await source.connect()
    return await source.snapshot(with_stacks=with_stacks)


def _encode(snapshot: Snapshot) -> str:
    from inspector import protocol

    try:
        return protocol.encode_snapshot_file(snapshot)
    except ValueError as error:  # a number JSON cannot carry (NaN) read from a foreign file
        raise InspectorError(f"cannot write this snapshot as JSON: {error}") from None


def _use_color(args: argparse.Namespace) -> bool:
    if args.output or args.color == "never":
        return False
    if args.color == "always":
        return True
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _print(text: str) -> None:
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOWrapper) and stdout.errors == "strict":
        # The text is escaped already; this is for a terminal that cannot show "·" or "—"
        # (LANG=C, a latin-1 console): "\xb7" rather than a traceback halfway through.
        stdout.reconfigure(errors="backslashreplace")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `inspector dump | head`: the reader has what it wanted. Point stdout at devnull so
        # the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _print_json(text: str) -> None:
    """JSON goes to stdout as UTF-8 whatever the locale's encoding: JSON text is UTF-8."""
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        _print(text)
        return
    try:
        sys.stdout.flush()
        out.write(text.encode("utf-8", errors="backslashreplace"))
        out.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # as `_print` does: the reader is gone
        os.dup2(devnull, sys.stdout.fileno())


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same directory and a rename, so a
    reader never sees half a snapshot and an interrupted dump leaves the old file intact."""
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InspectorError(f"cannot write {path}: it is a directory")
    try:
        with tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            # Saved JSON holds no lone surrogate (they are written as escapes); text that does
            # is kept readable rather than lost to an encoding error.
            errors="backslashreplace",
            dir=directory,
            prefix=f".{path.name}.",
            suffix=".tmp",
            delete=False,
        ) as handle:
            temporary = Path(handle.name)
            try:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            except BaseException:
                handle.close()
                temporary.unlink(missing_ok=True)
                raise
        try:
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except FileNotFoundError:
        raise InspectorError(f"cannot write {path}: no such directory {directory}") from None
    except PermissionError:
        raise InspectorError(f"cannot write {path}: permission denied") from None
    except OSError as error:
        raise InspectorError(f"cannot write {path}: {error.strerror or error}") from None

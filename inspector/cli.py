"""The `inspector` command: parses arguments and hands each subcommand to its module.

Each module in `inspector.commands` registers one subcommand and imports what it needs inside
its handler, so `inspector --help`, `dump` and `doctor` never load Textual.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Final

from inspector import __version__
from inspector.errors import ExitStatus, InspectorError

COMMANDS: Final = ("run", "attach", "dump", "doctor", "ps", "demo", "inject")

DESCRIPTION: Final = """\
See what a running uvicorn server is doing: every asyncio task and what it waits for, the
requests in flight, what blocked the event loop, and the exceptions nobody saw.

  inspector run app:app           serve an app with the agent installed (no code change)
  inspector run -- CMD...         any command that starts uvicorn (fastapi, gunicorn, ...)
  inspector attach                open the live terminal UI on a running server
  inspector doctor                say what is wrong, with the file:line to fix (for CI)
  inspector demo                  a buggy demo server with the UI attached
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspector",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"inspector.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `inspector` and `python -m inspector`; returns the exit status."""
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["run"]:  # uvicorn's options and a command are handed on, not parsed
        from inspector.commands.run import split_argv

        arguments, passthrough = split_argv(arguments)
        args = parser.parse_args(arguments)
        args.passthrough = passthrough
    else:
        args = parser.parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return ExitStatus.ERROR
    try:
        return int(handler(args))
    except InspectorError as error:
        print(f"inspector: {error}", file=sys.stderr)
        return int(error.exit_status)
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED

"""The TARGET and `--pid` arguments of the commands that read one server or a saved snapshot.

`attach`, `dump` and `doctor` all resolve them with `inspector.client.target.open_source`, so
they take them the same way and describe them in the same words.
"""

from __future__ import annotations

import argparse
from typing import Final

TARGET_HELP: Final = (
    "HOST:PORT, PORT, [IPv6]:PORT or a saved snapshot file (default 127.0.0.1:20101)"
)


def add_target_arguments(
    parser: argparse.ArgumentParser,
    pid_help: str = "the process to inspect (found through its agent)",
) -> None:
    """Add the optional positional TARGET and `--pid PID` (stored as `target` and `pid`)."""
    parser.add_argument("target", nargs="?", metavar="TARGET", help=TARGET_HELP)
    parser.add_argument("--pid", type=int, help=pid_help)


def add_inject_argument(parser: argparse.ArgumentParser) -> None:
    """`--inject`: start an agent in `--pid PID` first when it has none."""
    parser.add_argument(
        "--inject",
        action="store_true",
        help="with --pid: a server without an agent gets one first (as `inspector inject PID`)",
    )

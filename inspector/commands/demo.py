"""`inspector demo`: a buggy shop API served under the agent, traffic that sets its bugs off,
and the live UI attached to it (or, with --headless, the `doctor` report after a while)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from inspector.errors import InspectorError

DEFAULT_DURATION = 15.0

DESCRIPTION = """\
Start demo_app.py (a small shop API with real-world bugs: blocking calls in async def, a
deadlock, leaked semaphores, failing and dropped background tasks, a dead queue consumer,
threadpool exhaustion, …) under the agent, send it traffic that sets each bug off in turn,
and open the live UI on it. Quitting the UI stops everything.

--headless runs the same traffic for a while and prints the `doctor` report instead: every
failure with the file:line to fix. Needs FastAPI: pip install 'uvicorn-inspector[demo]'.
"""

EPILOG = """\
examples:
  inspector demo                          the live UI, until you quit it
  inspector demo --headless               the report after 15 s of traffic
  inspector demo --headless --json        {"findings": [...]} for scripts
  inspector demo --headless --check       exit 1 unless every demo bug is found
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a buggy demo server with the UI attached (--headless: the doctor report)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--headless", action="store_true", help="no UI: print the doctor report after the traffic"
    )
    parser.add_argument(
        "--duration",
        metavar="SECONDS",
        help=f"headless: seconds of traffic before the report (default {DEFAULT_DURATION:g}); "
        "with the UI: quit after this long",
    )
    parser.add_argument(
        "--port", metavar="PORT", help="HTTP port of the demo server (default: a free one)"
    )
    parser.add_argument("--json", action="store_true", help='headless: print {"findings": [...]}')
    parser.add_argument(
        "--check",
        action="store_true",
        help="headless: compare with the demo's known bugs; exit 1 if one was not found",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    duration = _duration(args.duration)
    port = _port(args.port)
    if (args.json or args.check) and not args.headless:
        raise InspectorError("--json and --check go with --headless")

    from inspector.demo.server import require_fastapi, start_demo_server

    require_fastapi()
    if not args.headless:
        from inspector.demo.session import load_tui

        load_tui()  # fail before starting anything when the UI is missing

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with _stop_on_termination():
        server = start_demo_server(http_port=port, progress=progress)
        try:
            if args.headless:
                from inspector.demo.headless import HeadlessOptions, run_headless

                options = HeadlessOptions(
                    duration=duration if duration is not None else DEFAULT_DURATION,
                    as_json=args.json,
                    check=args.check,
                )
                return asyncio.run(run_headless(server, options, sys.stdout, progress))
            from inspector.demo.session import run_tui

            return run_tui(server, duration)
        finally:
            progress("stopping demo server…")
            server.stop()


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InspectorError(f"--duration takes a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InspectorError(f"--duration must be a positive number of seconds, not {text!r}")
    return value


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InspectorError(f"--port takes a port number, not {text!r}") from None
    if not 1 <= value <= 65535:
        raise InspectorError(f"--port must be between 1 and 65535, not {value}")
    return value


@contextlib.contextmanager
def _stop_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the server is stopped on the way out."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or no such signal
            previous[sig] = signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""`inspector run APP`: serve an ASGI app under uvicorn with the agent installed, no code change.

uvicorn is given ``inspector.agent.bootstrap:app`` as its import string and the real app in
environment variables, so every serving process (including ``--workers N`` children, which are
spawned, not forked) wraps the app with the agent. Everything that can be checked before uvicorn
starts is checked here, so mistakes end with one line and exit status 2 instead of a traceback
or a server that never comes up: the app must import, the inspector port must be free, and a
non-loopback inspector address needs ``--allow-remote``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Final

from inspector.errors import InspectorError

DEFAULT_INSPECT_PORT: Final = 20101

EPILOG: Final = """\
examples:
  inspector run main:app                         serve main.py's app on 127.0.0.1:8000
  inspector run main:app --host 0.0.0.0         HTTP on every interface; the agent stays local
  inspector run main:app --workers 4             one agent per worker: 20101, 20102, ...
  inspector run main:app --inspect-port 0        let the OS pick the agent's port
  inspector run main:create_app --factory        APP is a function returning the app
  inspector run main:app --stall-threshold 0.05  report event-loop stalls of 50 ms or more

then, in another terminal:
  inspector attach                               the live UI (127.0.0.1:20101 by default)
  inspector doctor 127.0.0.1:20101               what is wrong, with the file:line to fix

The agent listens on 127.0.0.1 only. It has no authentication: anyone who can connect can read
the server's state and cancel its tasks (--read-only refuses that, and every other action).
Binding another address needs --allow-remote. aiomonitor's web UI is off unless --webui-port
asks for it; it then listens on the same host and honours --read-only.
"""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range 0-65535")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _detail_rate(text: str) -> int | None:
    """--request-detail-rate: a whole number of requests a second, or "all"."""
    if text.strip().lower() == "all":
        return None
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f'not a number of requests a second or "all": {text!r}'
        ) from None


def _number_in(what: str, ceiling: float, unit: str = "") -> Any:
    """An argparse type: a number above 0 and at most `ceiling`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not 0 < value <= ceiling:
            raise argparse.ArgumentTypeError(
                f"must be more than 0 and at most {ceiling:g}{unit}, got {text}"
            )
        return value

    return parse


_seconds = _number_in("a number of seconds", 3600, " seconds")
_share = _number_in("a fraction", 1)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="serve an ASGI app under uvicorn with the agent installed (no code change)",
        description=(
            "Serve APP with uvicorn, with the inspector agent running inside every server\n"
            "process. Options are uvicorn's, plus the agent's own."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "app", metavar="APP", help="the ASGI app as module:attribute, as for uvicorn (main:app)"
    )
    server = parser.add_argument_group("server options (as uvicorn's)")
    server.add_argument(
        "--host", default="127.0.0.1", help="address to serve HTTP on (default: %(default)s)"
    )
    server.add_argument("--port", type=_port, default=8000, help="HTTP port (default: %(default)s)")
    server.add_argument(
        "--app-dir", default=".", help="directory to import APP from (default: the current one)"
    )
    server.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="number of worker processes, each with its own agent",
    )
    server.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    server.add_argument("--http", choices=("auto", "h11", "httptools"), default="auto")
    server.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        default=None,
        help="uvicorn's log level (default: info)",
    )
    server.add_argument("--root-path", default="", help="ASGI root_path for apps behind a proxy")
    server.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trust X-Forwarded-* headers from 127.0.0.1 (uvicorn's default: on)",
    )
    server.add_argument(
        "--factory", action="store_true", help="APP is a function that returns the app"
    )
    agent = parser.add_argument_group("inspector options")
    agent.add_argument(
        "--inspect-host",
        default="127.0.0.1",
        help="address the agent listens on (default: %(default)s)",
    )
    agent.add_argument(
        "--inspect-port",
        type=_port,
        default=DEFAULT_INSPECT_PORT,
        help="the agent's port; worker N gets this + N; 0 picks free ports (default: %(default)s)",
    )
    agent.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --inspect-host (no authentication: think twice)",
    )
    agent.add_argument(
        "--stall-threshold",
        type=_seconds,
        default=0.1,
        metavar="SECONDS",
        help="report event-loop stalls longer than this (default: %(default)s)",
    )
    agent.add_argument(
        "--read-only",
        action="store_true",
        help="refuse every action from clients: cancelling a task, sending a signal (telnet and "
        "web UI alike)",
    )
    agent.add_argument(
        "--webui-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="also serve aiomonitor's web UI on this port of the inspect host (0: a free port; "
        "worker i of --workers N gets PORT + i); off by default",
    )
    agent.add_argument(
        "--lifecycle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="track requests, background jobs, the threadpool and unseen exceptions, at a few "
        "microseconds per request; --no-lifecycle keeps tasks, stacks, stalls and loop lag with "
        "nothing running per request (default: on)",
    )
    agent.add_argument(
        "--request-detail-rate",
        type=_detail_rate,
        default=200,
        metavar="N|all",
        help="record up to about N requests a second in full (status, bytes, history, route "
        "latency, the work they start); above it one in every few is, and the others are only "
        "listed while in flight and counted, so a busy server keeps its speed; 'all' records "
        "every request (default: %(default)s)",
    )
    agent.add_argument(
        "--trace-exceptions",
        action="store_true",
        help="Python >= 3.12: also report exceptions raised and swallowed in app code",
    )
    agent.add_argument(
        "--metrics-port", type=_port, default=None, help="serve Prometheus metrics on this port"
    )
    agent.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="before importing APP, move the objects loaded so far (Python's, uvicorn's, the "
        "agent's libraries) out of the garbage collector's way with gc.freeze(), so they do not "
        "slow down every full collection (default: on)",
    )
    agent.add_argument(
        "--agent-cpu",
        type=_share,
        default=None,
        metavar="SHARE",
        help="fraction of one core the agent may spend answering clients; past it, answers wait "
        "(default: 0.25)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from inspector.addresses import is_loopback
    from inspector.agent.bootstrap import IMPORT_STRING, environment
    from inspector.agent.errors import AgentStartError
    from inspector.agent.ports import check_host, free_port, port_is_free
    from inspector.agent.probe import AgentConfig

    if args.trace_exceptions and not args.lifecycle:
        raise InspectorError("--trace-exceptions needs the lifecycle probes: drop --no-lifecycle")
    workers = args.workers or 1
    config = AgentConfig(
        host=args.inspect_host,
        port=args.inspect_port,
        allow_remote=args.allow_remote,
        stall_threshold=args.stall_threshold,
        read_only=args.read_only,
        lifecycle=args.lifecycle,
        request_detail_rate=args.request_detail_rate,
        trace_exceptions=args.trace_exceptions,
        app=args.app,
        metrics_port=args.metrics_port,
        webui_port=args.webui_port,
        **({} if args.agent_cpu is None else {"cpu_share": args.agent_cpu}),
    )
    try:
        check_host(config, remote_hint="pass --allow-remote")
    except AgentStartError as error:
        raise InspectorError(str(error)) from None

    if config.port == 0 and workers == 1:
        config = _replace_port(config, free_port(config.host))
    elif config.port != 0:
        for port in range(config.port, config.port + workers):
            if port > 65535 or not port_is_free(config.host, port):
                raise InspectorError(
                    f"the inspector port {config.host}:{port} is already in use (pick another "
                    "with --inspect-port, or --inspect-port 0 for a free one)"
                )

    app_dir = os.path.abspath(args.app_dir)
    if workers == 1 and args.gc_freeze:
        # This process imports the app next (to check it) and then serves it.
        from inspector.agent.bootstrap import settle_runner_objects

        settle_runner_objects()
    _check_app(args.app, app_dir, single_process=workers == 1)

    if not is_loopback(config.host):
        print(
            f"inspector: WARNING: the agent listens on {config.host} without authentication; "
            "anyone who can reach it can read this server's state and cancel its tasks",
            file=sys.stderr,
        )

    status_file = _status_path()
    os.environ.update(
        environment(
            args.app,
            config,
            app_dir=app_dir,
            factory=args.factory,
            status_file=status_file,
            gc_freeze=args.gc_freeze,
        )
    )
    print(_where_message(config, workers), file=sys.stderr, flush=True)

    import uvicorn

    status = 0
    try:
        uvicorn.run(
            IMPORT_STRING,
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop=args.loop,
            http=args.http,
            log_level=args.log_level,
            root_path=args.root_path,
            proxy_headers=args.proxy_headers,
        )
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        failure = _read_status(status_file) if status_file else None
    if failure:
        raise InspectorError(failure)
    return status


def _replace_port(config: Any, port: int) -> Any:
    import dataclasses

    return dataclasses.replace(config, port=port)


def _check_app(app: str, app_dir: str, *, single_process: bool) -> None:
    """Fail now, with one line, if APP cannot be imported.

    With one process the app is imported here, as uvicorn would in this same process. Workers
    import it themselves; the parent only checks the module exists, so that import-time side
    effects do not run in a process that never serves.
    """
    from inspector.agent.bootstrap import AppImportError, import_target

    if single_process:
        try:
            import_target(app, app_dir=app_dir, factory=False)
        except AppImportError as error:
            raise InspectorError(f"cannot load the app: {error}") from None
        return
    import importlib.util

    module_name, _, attribute = app.partition(":")
    if not module_name or not attribute:
        raise InspectorError(
            f"cannot load the app: {app!r} must look like module:attribute (for example main:app)"
        )
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        spec = importlib.util.find_spec(module_name)
    except Exception as error:
        raise InspectorError(
            f"cannot load the app: importing {module_name!r} failed: "
            f"{type(error).__name__}: {error}"
        ) from None
    if spec is None:
        raise InspectorError(
            f"cannot load the app: cannot import module {module_name!r} (from {app_dir})"
        )


def _where_message(config: Any, workers: int) -> str:
    host = config.host
    if workers == 1:
        return (
            f"inspector: agent listening on {host}:{config.port}; "
            f"attach with: inspector attach {host}:{config.port}"
        )
    if config.port == 0:
        return (
            f"inspector: one agent per worker on free ports of {host}; list them with: inspector ps"
        )
    last = config.port + workers - 1
    return (
        f"inspector: one agent per worker on {host}:{config.port}-{last}; "
        f"attach with: inspector attach {host}:{config.port} (or see them all: inspector ps)"
    )


def _status_path() -> str | None:
    """Where a serving process explains a failed start; created only if one fails.

    Nothing is created up front: uvicorn ends on SIGTERM by re-raising the signal, and a file
    made here would outlive every normal run.
    """
    from inspector.registration import runtime_dir

    try:
        path = runtime_dir() / f"run-{os.getpid()}.status"
    except OSError:
        return None
    try:
        path.unlink()  # left by an earlier process with our pid
    except OSError:
        pass
    return str(path)


def _read_status(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        lines = []
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return lines[0] if lines else None


__all__ = ["EPILOG", "handle", "register"]

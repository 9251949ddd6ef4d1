"""`inspector run`: start a server with the agent inside every uvicorn it runs, no code change.

Two forms:

* ``inspector run [OPTIONS] -- COMMAND [ARGS...]`` runs any command (``uvicorn main:app ...``,
  ``fastapi run``, ``gunicorn -k uvicorn.workers.UvicornWorker``, ``python main.py``) with
  `inspector.agent.autoload` in every Python process it starts, then *becomes* that command
  (``exec``): same pid, signals, exit status, stdin and stdout. Only ``PYTHONPATH`` and the
  agent's own variables are added to the environment.
* ``inspector run [OPTIONS] APP [UVICORN OPTIONS]`` is the short form of
  ``-- uvicorn APP ...`` that checks what it can first, so mistakes end with one line and exit
  status 2 instead of a traceback or a server that never comes up: the options must parse (they
  are uvicorn's own, read by uvicorn's own command line, ``UVICORN_*`` variables included), the
  app must import, the inspector ports must be free, and an agent that cannot start stops the
  server with a message that names the port.

Every agent option has a variable (`inspector.agent.settings`) that sets its default, and
``INSPECTOR_ENABLED=0`` runs the server without the agent.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from inspector.errors import InspectorError

DEFAULT_INSPECT_PORT: Final = 20101

USAGE: Final = """\
inspector run [OPTIONS] APP [UVICORN OPTIONS]
       inspector run [OPTIONS] -- COMMAND [ARGS...]"""

EPILOG: Final = """\
examples:
  inspector run main:app                         serve main.py's app on 127.0.0.1:8000
  inspector run main:app --host 0.0.0.0         HTTP on every interface; the agent stays local
  inspector run main:app --workers 4             one agent per worker: 20101, 20102, ...
  inspector run main:app --reload                the agent comes back after every reload
  inspector run main:app --inspect-port 0        let the OS pick the agent's port
  inspector run main:create_app --factory        APP is a function returning the app
  inspector run main:app --stall-threshold 0.05  report event-loop stalls of 50 ms or more
  inspector run main:app --metrics-port 9100     Prometheus metrics (worker i on 9100 + i)
  inspector run main:app --log-events json       a JSON line per stall, lost exception, failed job
  inspector run -- fastapi run main.py           any command: fastapi run / dev, gunicorn, ...
  inspector run -- gunicorn -w 4 -k uvicorn.workers.UvicornWorker main:app
  inspector run --read-only -- python main.py    a program that calls uvicorn.run() itself

then, in another terminal:
  inspector attach                               the live UI (127.0.0.1:20101 by default)
  inspector doctor 127.0.0.1:20101               what is wrong, with the file:line to fix
  inspector ps                                   every server on this machine, with its agent

APP takes every uvicorn option with uvicorn's meaning, and UVICORN_* variables (uvicorn --help
lists them). Every option above also reads a variable, shown as [env: ...]; INSPECTOR_ENABLED=0
runs the server without the agent (an image can carry it off, and a deployment turn it on).

The agent listens on 127.0.0.1 only. It has no authentication: anyone who can connect can read
the server's state and cancel its tasks (--read-only refuses that, and every other action).
Binding another address needs --allow-remote. aiomonitor's web UI is off unless --webui-port
asks for it; it then listens on the same host and honours --read-only.
"""


@dataclass(frozen=True)
class Passthrough:
    """What `inspector run` hands on untouched: uvicorn's arguments, or a whole command."""

    uvicorn_args: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None


def _type(parse: Any) -> Any:
    """An argparse type from a settings parser (ValueError → argparse's one-line error)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


class BadSetting:
    """The default of an option whose variable cannot be read: `handle` reports it, so a bad
    variable never breaks the commands that do not read it. (Not a str: argparse would parse
    a str default with the option's type.)"""

    def __init__(self, message: str) -> None:
        self.message = message

    def __str__(self) -> str:
        return self.message


def _env_default(option: str, default: Any) -> Any:
    from inspector.agent.settings import SettingError, from_environment

    try:
        return from_environment(option, os.environ, default)
    except SettingError as error:
        return BadSetting(str(error))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The agent's options, each with the variable that sets its default."""
    from inspector.agent import settings

    def env(option: str) -> str:
        return f" [env: {settings.BY_OPTION[option].variable}]"

    agent = parser.add_argument_group("inspector options")
    agent.add_argument(
        "--inspect-host",
        default=_env_default("--inspect-host", "127.0.0.1"),
        help="address the agent listens on (default: %(default)s)" + env("--inspect-host"),
    )
    agent.add_argument(
        "--inspect-port",
        type=_type(settings.parse_port),
        default=_env_default("--inspect-port", DEFAULT_INSPECT_PORT),
        help="the agent's port; worker N gets this + N; 0 picks free ports "
        "(default: %(default)s)" + env("--inspect-port"),
    )
    agent.add_argument(
        "--allow-remote",
        action="store_true",
        default=_env_default("--allow-remote", False),
        help="allow a non-loopback --inspect-host (no authentication: think twice)"
        + env("--allow-remote"),
    )
    agent.add_argument(
        "--stall-threshold",
        type=_type(settings.parse_seconds),
        default=_env_default("--stall-threshold", 0.1),
        metavar="SECONDS",
        help="report event-loop stalls longer than this (default: %(default)s)"
        + env("--stall-threshold"),
    )
    agent.add_argument(
        "--read-only",
        action="store_true",
        default=_env_default("--read-only", False),
        help="refuse every action from clients: cancelling a task, sending a signal (telnet and "
        "web UI alike)" + env("--read-only"),
    )
    agent.add_argument(
        "--webui-port",
        type=_type(settings.parse_port),
        default=_env_default("--webui-port", None),
        metavar="PORT",
        help="also serve aiomonitor's web UI on this port of the inspect host (0: a free port; "
        "worker i of --workers N gets PORT + i); off by default" + env("--webui-port"),
    )
    agent.add_argument(
        "--lifecycle",
        action=argparse.BooleanOptionalAction,
        default=_env_default("--lifecycle", True),
        help="track requests, background jobs, the threadpool and unseen exceptions, at a few "
        "microseconds per request; --no-lifecycle keeps tasks, stacks, stalls and loop lag with "
        "nothing running per request (default: on)" + env("--lifecycle"),
    )
    agent.add_argument(
        "--request-detail-rate",
        type=_type(settings.parse_detail_rate),
        default=_env_default("--request-detail-rate", 200),
        metavar="N|all",
        help="record up to about N requests a second in full (status, bytes, history, route "
        "latency, the work they start); above it one in every few is, and the others are only "
        "listed while in flight and counted, so a busy server keeps its speed; 'all' records "
        "every request (default: 200)" + env("--request-detail-rate"),
    )
    agent.add_argument(
        "--trace-exceptions",
        action="store_true",
        default=_env_default("--trace-exceptions", False),
        help="Python >= 3.12: also report exceptions raised and swallowed in app code"
        + env("--trace-exceptions"),
    )
    agent.add_argument(
        "--metrics-port",
        type=_type(settings.parse_port),
        default=_env_default("--metrics-port", None),
        help="serve Prometheus metrics on this port; worker i of --workers N gets PORT + i"
        + env("--metrics-port"),
    )
    agent.add_argument(
        "--metrics-host",
        type=_type(settings.parse_optional_host),
        default=_env_default("--metrics-host", None),
        metavar="HOST",
        help="address the metrics port listens on (default: the --inspect-host); a non-loopback "
        "one needs --allow-remote, e.g. 0.0.0.0 for a Prometheus in another pod"
        + env("--metrics-host"),
    )
    agent.add_argument(
        "--log-events",
        type=_type(settings.parse_log_events),
        default=_env_default("--log-events", "off"),
        metavar="|".join(settings.LOG_EVENT_MODES),
        help="log every stall, unseen exception and failed background job, one line each "
        "(logger 'inspector.events', rate-limited): text or json on stderr, or 'logging' to "
        "hand the records to the app's logging setup (default: off)" + env("--log-events"),
    )
    agent.add_argument(
        "--otel",
        action=argparse.BooleanOptionalAction,
        default=_env_default("--otel", False),
        help="also report the metrics through OpenTelemetry's global meter, and add each stall "
        "as an event to the current request's span (pip install 'uvicorn-inspector[otel]'; "
        "default: off)" + env("--otel"),
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
        type=_type(settings.parse_share),
        default=_env_default("--agent-cpu", None),
        metavar="SHARE",
        help="fraction of one core the agent may spend answering clients; past it, answers wait "
        "(default: 0.25)" + env("--agent-cpu"),
    )


class _HelpWithUvicornOptions(argparse.Action):
    """``-h``: the agent's options, then uvicorn's, read from uvicorn's own command line."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.print_help()
        try:
            from inspector.commands.run_app import uvicorn_options_help

            options = uvicorn_options_help()
        except Exception as error:  # uvicorn missing or changed: the rest of the help stands
            options = f"  (uvicorn's options could not be listed: {error})"
        print("\nuvicorn options for APP (uvicorn's own; also UVICORN_<NAME> variables):")
        print(options)
        parser.exit()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        add_help=False,
        help="start a server with the agent inside (no code change)",
        usage=USAGE,
        description=(
            "Serve APP with uvicorn, or run any COMMAND that starts uvicorn servers, with the\n"
            "inspector agent inside every server process."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-h", "--help", action=_HelpWithUvicornOptions, help="show this help message and exit"
    )
    parser.set_defaults(handler=handle, passthrough=Passthrough())
    _run_parsers.append(parser)


_run_parsers: list[argparse.ArgumentParser] = []
"""The `run` subparser, completed with the agent's options only when `run` is the command:
their defaults read the INSPECTOR_* variables, which loads the agent's settings, and `dump`,
`doctor` and `ps` load nothing of the agent."""
_completed: set[argparse.ArgumentParser] = set()


def _agent_options_parser() -> argparse.ArgumentParser:
    """The latest registered `run` subparser with the agent's options added (once), or a parser
    of those options alone when none was registered."""
    parser = _run_parsers[-1] if _run_parsers else argparse.ArgumentParser(add_help=False)
    if parser not in _completed:
        add_arguments(parser)
        _completed.add(parser)
    return parser


def split_argv(argv: Sequence[str]) -> tuple[list[str], Passthrough]:
    """Split ``run ...`` into what argparse reads (the agent's options) and what is handed on.

    uvicorn's options are uvicorn's to read, wherever they stand, so argparse never sees them
    (it would take the value of ``--log-config FILE`` for APP).
    """
    parser = _agent_options_parser()
    rest = list(argv[1:])
    command: tuple[str, ...] | None = None
    if "--" in rest:
        cut = rest.index("--")
        rest, command = rest[:cut], tuple(rest[cut + 1 :])
    takes_value = {
        option: action.nargs != 0 for action in parser._actions for option in action.option_strings
    }
    ours: list[str] = [argv[0]]
    theirs: list[str] = []
    index = 0
    while index < len(rest):
        token = rest[index]
        name = token.split("=", 1)[0]
        if token in ("-h", "--help"):
            ours.append(token)
        elif name in takes_value:
            ours.append(token)
            if takes_value[name] and "=" not in token and index + 1 < len(rest):
                index += 1
                ours.append(rest[index])
        else:
            theirs.append(token)
        index += 1
    return ours, Passthrough(uvicorn_args=tuple(theirs), command=command)


def handle(args: argparse.Namespace) -> int:
    from inspector.agent.settings import SettingError, enabled

    passthrough: Passthrough = args.passthrough
    for value in vars(args).values():
        if isinstance(value, BadSetting):
            raise InspectorError(str(value))
    if passthrough.command is not None and passthrough.uvicorn_args:
        raise InspectorError(
            f"{passthrough.uvicorn_args[0]!r} before --: put the server's own arguments after "
            "the command (inspector run [OPTIONS] -- COMMAND [ARGS...])"
        )
    if passthrough.command is None and not passthrough.uvicorn_args:
        raise InspectorError(
            "nothing to run: give an APP (inspector run main:app) or a command "
            "(inspector run -- uvicorn main:app)"
        )
    try:
        wanted = enabled(os.environ)
    except SettingError as error:
        raise InspectorError(str(error)) from None
    config = None if not wanted else _config(args)
    if passthrough.command is not None:
        from inspector.commands.run_command import exec_command

        return exec_command(passthrough.command, config, gc_freeze=args.gc_freeze)
    from inspector.commands.run_app import serve

    return serve(passthrough.uvicorn_args, config, gc_freeze=args.gc_freeze)


def _config(args: argparse.Namespace) -> Any:
    from inspector.agent.errors import AgentStartError
    from inspector.agent.ports import check_host
    from inspector.agent.probe import AgentConfig

    if args.trace_exceptions and not args.lifecycle:
        raise InspectorError("--trace-exceptions needs the lifecycle probes: drop --no-lifecycle")
    config = AgentConfig(
        host=args.inspect_host,
        port=args.inspect_port,
        allow_remote=args.allow_remote,
        stall_threshold=args.stall_threshold,
        read_only=args.read_only,
        lifecycle=args.lifecycle,
        request_detail_rate=args.request_detail_rate,
        trace_exceptions=args.trace_exceptions,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        log_events=args.log_events,
        otel=args.otel,
        webui_port=args.webui_port,
        **({} if args.agent_cpu is None else {"cpu_share": args.agent_cpu}),
    )
    try:
        check_host(config, remote_hint="pass --allow-remote")
    except AgentStartError as error:
        raise InspectorError(str(error)) from None
    if config.metrics_port is not None:
        from inspector.agent.metrics import MetricsUnavailable, metrics_host

        try:
            metrics_host(config)
        except MetricsUnavailable as error:
            raise InspectorError(str(error)) from None
    return config


def warn_if_remote(config: Any) -> None:
    from inspector.addresses import is_loopback

    if not is_loopback(config.host):
        print(
            f"inspector: WARNING: the agent listens on {config.host} without authentication; "
            "anyone who can reach it can read this server's state and cancel its tasks",
            file=sys.stderr,
        )


def check_ports_free(config: Any, count: int) -> None:
    """Fail now, naming the port, if one of the `count` agent ports is taken."""
    from inspector.agent.ports import port_is_free

    if config.port == 0:
        return
    for port in range(config.port, config.port + count):
        if port > 65535 or not port_is_free(config.host, port):
            raise InspectorError(
                f"the inspector port {config.host}:{port} is already in use (pick another "
                "with --inspect-port, or --inspect-port 0 for a free one)"
            )


def autoload_environment(config: Any, *, strict: bool, gc_freeze: bool) -> dict[str, str]:
    """The variables that carry the agent into every Python process of the tree."""
    from inspector.agent.autoload import ENV_CONFIG, ENV_GC_FREEZE, ENV_STRICT, SITE_DIR
    from inspector.agent.bootstrap import config_to_json

    existing = os.environ.get("PYTHONPATH")
    return {
        ENV_CONFIG: config_to_json(config),
        ENV_STRICT: "1" if strict else "",
        ENV_GC_FREEZE: "1" if gc_freeze else "",
        "PYTHONPATH": SITE_DIR if not existing else SITE_DIR + os.pathsep + existing,
    }


__all__ = [
    "EPILOG",
    "Passthrough",
    "autoload_environment",
    "check_ports_free",
    "handle",
    "register",
    "split_argv",
    "warn_if_remote",
]

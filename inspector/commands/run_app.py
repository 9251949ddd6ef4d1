"""`inspector run APP [UVICORN OPTIONS]`: uvicorn's own command line, checked first, with the agent.

The options are read by uvicorn's own command (so all of them, with uvicorn's meaning and its
``UVICORN_*`` variables), first to check them and what they name, then to serve. The agent comes
in through `inspector.agent.autoload`, in this process and, through the environment, in the
``--workers`` and ``--reload`` children. Here it is strict: an agent that cannot start stops the
server, and the serving process leaves the reason in a status file that this process prints as
one line after uvicorn has exited.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from inspector.errors import InspectorError
from inspector.escape import printable


def uvicorn_params(arguments: Sequence[str]) -> dict[str, Any]:
    """uvicorn's options as its command line reads them; InspectorError with click's message."""
    import click

    command = _uvicorn_command()
    try:
        context = command.make_context("inspector run", list(arguments))
    except click.exceptions.Exit as exit_:  # --version and the like: uvicorn has answered
        raise SystemExit(exit_.exit_code) from None
    except click.ClickException as error:
        raise InspectorError(error.format_message().replace("\n", " ")) from None
    return dict(context.params)


def serve(arguments: Sequence[str], config: Any, *, gc_freeze: bool) -> int:
    """Check, then run uvicorn's command with `arguments`; its exit status."""
    from inspector.commands.run import autoload_environment, check_ports_free, warn_if_remote

    params = uvicorn_params(arguments)
    if config is not None:
        import dataclasses

        from inspector.agent.ports import free_port

        processes = 1 if params.get("reload") else int(params.get("workers") or 1)
        if config.port == 0 and processes == 1:
            config = dataclasses.replace(config, port=free_port(config.host))
        check_ports_free(config, processes)
        config = dataclasses.replace(config, app=params["app"])
        app_dir = os.path.abspath(params.get("app_dir") or ".")
        if processes == 1 and not params.get("reload") and gc_freeze:
            # This process imports the app next (to check it) and then serves it.
            from inspector.agent.bootstrap import settle_runner_objects

            settle_runner_objects()
        _check_app(params["app"], app_dir, imports_here=processes == 1 and not params["reload"])
        warn_if_remote(config)
        status_file = _status_path()
        os.environ.update(autoload_environment(config, strict=True, gc_freeze=gc_freeze))
        if status_file is not None:
            from inspector.agent.bootstrap import ENV_STATUS_FILE

            os.environ[ENV_STATUS_FILE] = status_file
        from inspector.agent.autoload import Plan, install

        install(Plan(config, strict=True, gc_freeze=gc_freeze, announce=False))
        print(_where_message(config, processes), file=sys.stderr, flush=True)
    else:
        status_file = None
    return _run_uvicorn(arguments, status_file)


def uvicorn_options_help() -> str:
    """uvicorn's options as its own ``--help`` words them, without its usage line."""
    import click

    command = _uvicorn_command()
    context = click.Context(command, info_name="inspector run")
    formatter = context.make_formatter()
    command.format_options(context, formatter)
    text: str = formatter.getvalue()
    hidden = ("Options:", "--help")  # this command's own -h answers
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith(hidden))


def _uvicorn_command() -> Any:
    """uvicorn's click command (``uvicorn.main`` the attribute is that command, not the module)."""
    import sys

    import uvicorn.main  # noqa: F401 - loads the module

    return sys.modules["uvicorn.main"].main


def _run_uvicorn(arguments: Sequence[str], status_file: str | None) -> int:
    status = 0
    try:
        _uvicorn_command().main(args=list(arguments), prog_name="inspector run")
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        failure = _read_status(status_file) if status_file else None
    if failure:
        raise InspectorError(failure)
    return status


def _check_app(app: str, app_dir: str, *, imports_here: bool) -> None:
    """Fail now, with one line, if APP cannot be imported.

    When this process serves, the app is imported here, as uvicorn would next. Workers and the
    reloader's child import it themselves; then only the module's presence is checked, so that
    import-time side effects do not run in a process that never serves.
    """
    from inspector.agent.bootstrap import AppImportError, AppRaisedError, import_target

    if imports_here:
        try:
            import_target(app, app_dir=app_dir, factory=False)
        except AppRaisedError as error:
            from inspector.commands.app_errors import app_traceback

            sys.stderr.write(app_traceback(error.error))
            raise InspectorError(
                f"cannot load the app: {printable(str(error))}; the traceback above ends at "
                "the line to fix"
            ) from None
        except AppImportError as error:
            raise InspectorError(f"cannot load the app: {printable(str(error))}") from None
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


def _where_message(config: Any, processes: int) -> str:
    host = config.host
    if processes == 1:
        return (
            f"inspector: agent listening on {host}:{config.port}; "
            f"attach with: inspector attach {host}:{config.port}"
        )
    if config.port == 0:
        return (
            f"inspector: one agent per worker on free ports of {host}; list them with: inspector ps"
        )
    last = config.port + processes - 1
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

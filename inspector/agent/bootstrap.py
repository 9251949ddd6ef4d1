"""What every `inspector run` needs in the serving process: the agent's configuration as
JSON, the app imported the way uvicorn does (with a one-line error), the start-up objects out of
the collector's way, and a way to tell the parent why the server could not start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any, Final

from inspector.agent.probe import AgentConfig

ENV_STATUS_FILE: Final = "INSPECTOR_RUN_STATUS_FILE"
"""A file where a serving process writes why it could not start, for the parent to print."""


class AppImportError(Exception):
    """The target app could not be imported; the message is one line for a person."""


class AppRaisedError(AppImportError):
    """The app's own code raised while it was imported (or its factory called): the fault is in
    that code, so the caller shows `error`'s traceback before the one line."""

    def __init__(self, message: str, error: BaseException) -> None:
        super().__init__(message)
        self.error = error


def config_to_json(config: AgentConfig) -> str:
    return json.dumps(dataclasses.asdict(config), separators=(",", ":"))


def config_from_json(text: str) -> AgentConfig:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("agent configuration is not an object")
    known = {f.name for f in dataclasses.fields(AgentConfig)}
    return AgentConfig(**{key: value for key, value in data.items() if key in known})


def import_target(import_string: str, app_dir: str | None = None, factory: bool = False) -> Any:
    """Import "module:attribute" the way uvicorn does, with a one-line error for a person.

    A module or attribute that does not exist is an `AppImportError`; an exception raised by
    the app's own code while importing is an `AppRaisedError` that keeps it.
    """
    if app_dir is not None:
        path = os.path.abspath(app_dir)
        if path not in sys.path:
            sys.path.insert(0, path)
    module_name, _, attribute = import_string.partition(":")
    if not module_name or not attribute:
        raise AppImportError(
            f"app {import_string!r} must look like module:attribute (for example main:app)"
        )
    import importlib

    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name or (error.name and module_name.startswith(error.name + ".")):
            where = os.path.abspath(app_dir or ".")
            raise AppImportError(f"cannot import module {module_name!r} (from {where})") from None
        raise AppRaisedError(_raised(f"importing {module_name!r}", error), error) from None
    except Exception as error:
        raise AppRaisedError(_raised(f"importing {module_name!r}", error), error) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppImportError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if factory:
        try:
            target = target()
        except Exception as error:
            raise AppRaisedError(
                _raised(f"the app factory {import_string!r}", error), error
            ) from None
    return target


def _raised(what: str, error: BaseException) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{what} raised {type(error).__name__}" + (f": {first}" if first else "")


_settled = False


def settle_runner_objects() -> None:
    """Load the agent's libraries, then take everything loaded so far out of the collector's way.

    aiomonitor brings aiohttp, prompt_toolkit, jinja2 and click: about 30,000 objects that live
    as long as the process. Every full collection walks every object it tracks, and a busy
    FastAPI server runs one several times a second, so these alone made each one about twice as
    long (measured: GC time 7 % → 15 % of a loaded server's CPU). `gc.freeze()` moves the objects
    that exist now (the interpreter's, uvicorn's, aiomonitor's, the agent's) to the permanent
    generation, as its documentation suggests for a server's start-up objects. It runs before
    the app is imported: the app's own objects are collected exactly as without the agent.
    Once per process: a second call would freeze the app's objects too.
    """
    global _settled
    if _settled:
        return
    _settled = True
    import gc

    try:
        import uvicorn.config  # noqa: F401 - the server
        import uvicorn.server  # noqa: F401

        from inspector.agent import commands  # noqa: F401 - imports aiomonitor and its UI
    except Exception:  # the agent reports its own start-up failure later, with a reason
        return
    gc.collect()
    gc.freeze()


def report_failure(message: str) -> None:
    """Tell the `inspector run` parent why this process could not serve (best effort)."""
    path = os.environ.get(ENV_STATUS_FILE)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(message.replace("\n", " ") + "\n")
    except OSError:
        pass

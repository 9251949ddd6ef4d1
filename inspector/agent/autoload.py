"""Put the agent inside every uvicorn server a process starts, whoever starts it.

`inspector run -- COMMAND` puts `inspector/agent/site` first on ``PYTHONPATH`` and the agent's
configuration in ``INSPECTOR_AUTOLOAD_CONFIG``; every Python process of the command then runs
that directory's ``sitecustomize``, which calls `install_from_environment`. The command itself
is not changed: ``uvicorn main:app``, ``fastapi run``, ``gunicorn -k uvicorn.workers...``, a
``--reload`` child, ``--workers`` children (spawned, so they inherit only the environment),
``python main.py`` calling ``uvicorn.run``, or ``uvicorn.Server(config).serve()`` in a larger
program.

All of them load their app through one method, ``uvicorn.config.Config.load``, in the process
that serves. It is wrapped when ``uvicorn.config`` is first imported (an import hook, so a
process that never imports uvicorn pays nothing), and the app it loads is wrapped with
`InstrumentedApp`: the agent starts with the app's lifespan, on the app's loop. A process that
does not serve (uvicorn's reloader or ``--workers`` supervisor, gunicorn's master) imports the
module but never loads an app, so it never runs an agent.

Nothing here may stop the server: any failure is one warning on stderr, and the app is served
as it would be without the inspector.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.abc
import importlib.machinery
import os
import sys
import types
from collections.abc import Sequence
from typing import Any, Final

from inspector.agent.probe import AgentConfig

ENV_CONFIG: Final = "INSPECTOR_AUTOLOAD_CONFIG"
"""The agent's configuration (JSON), set by `inspector run -- COMMAND` for the whole tree."""
ENV_STRICT: Final = "INSPECTOR_AUTOLOAD_STRICT"
"""Set by `inspector run APP`: an agent that cannot start stops the server (and says why)."""
ENV_GC_FREEZE: Final = "INSPECTOR_AUTOLOAD_GC_FREEZE"
SITE_DIR: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
"""The directory whose ``sitecustomize`` calls `install_from_environment`."""

_PATCHED: Final = "__inspector_autoload__"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What every serving process of the tree does."""

    config: AgentConfig
    strict: bool = False
    gc_freeze: bool = True
    announce: bool = True
    """Print where the agent listens (on stderr), once per serving process."""


_plan: Plan | None = None


def warn(message: str) -> None:
    """One line on stderr, never an exception."""
    try:
        print(f"inspector: {message}", file=sys.stderr, flush=True)
    except Exception:
        pass


def install(plan: Plan) -> None:
    """Wrap `Config.load` now if uvicorn is loaded, or as soon as it is imported."""
    global _plan
    _plan = plan
    module = sys.modules.get("uvicorn.config")
    if module is not None:
        _patch(module)
        return
    if not any(isinstance(finder, _UvicornConfigFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _UvicornConfigFinder())


def install_from_environment() -> None:
    """The ``sitecustomize`` entry: read the plan `inspector run` left in the environment."""
    from inspector.agent.bootstrap import config_from_json

    text = os.environ.get(ENV_CONFIG)
    if not text:
        return
    try:
        config = config_from_json(text)
    except (ValueError, TypeError) as error:
        warn(f"bad {ENV_CONFIG} ({error}); the server runs without the agent")
        return
    install(
        Plan(
            config,
            strict=bool(os.environ.get(ENV_STRICT)),
            gc_freeze=bool(os.environ.get(ENV_GC_FREEZE)),
            announce=not os.environ.get(ENV_STRICT),
        )
    )


class _UvicornConfigFinder(importlib.abc.MetaPathFinder):
    """Finds ``uvicorn.config`` through the other finders and patches it once it has run."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "uvicorn.config":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then wraps `Config.load` in the module it made."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        _patch(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... for tracebacks
        return getattr(self._loader, name)


def _patch(module: types.ModuleType) -> None:
    try:
        config_class = module.Config
        original = config_class.load
    except AttributeError:
        warn("this uvicorn has no Config.load; the server runs without the agent")
        return
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    def load(self: Any) -> None:
        plan = _plan
        if plan is not None and plan.gc_freeze and isinstance(getattr(self, "app", None), str):
            _settle()
        original(self)
        if plan is not None:
            try:
                self.loaded_app = _instrumented(self.loaded_app, self, plan)
            except Exception as error:  # never stop the server for the agent's sake
                warn(f"the agent could not be added ({error!r}); the server runs without it")

    setattr(load, _PATCHED, True)
    config_class.load = load


def _settle() -> None:
    """Freeze the start-up objects before the app is imported (see `settle_runner_objects`)."""
    try:
        from inspector.agent.bootstrap import settle_runner_objects

        settle_runner_objects()
    except Exception:
        pass


def app_name(config: Any) -> str | None:
    """The app as the user would name it ("main:app"), also when uvicorn was handed the object
    (``uvicorn.run(app)``, gunicorn): the module-level name that holds it in the app's own code."""
    app = getattr(config, "app", None)
    if isinstance(app, str):
        return app
    found = _module_attribute_holding(app)
    if found is not None:
        return found
    kind = type(app)
    return f"{kind.__module__}:{kind.__qualname__}"


def _module_attribute_holding(app: Any) -> str | None:
    """ "module:name" of a global that is `app`, in `__main__` or a module outside the
    interpreter's and the environment's libraries (the user's code)."""
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    for module_name, module in list(sys.modules.items()):
        if module_name != "__main__":
            path = getattr(module, "__file__", None) or ""
            if not path or path.startswith(prefixes):
                continue
        try:
            names = vars(module)
        except TypeError:
            continue
        for name, value in list(names.items()):
            if value is app and not name.startswith("_"):
                shown = module_name
                if module_name == "__main__":
                    main_file = getattr(module, "__file__", None)
                    shown = os.path.splitext(os.path.basename(main_file))[0] if main_file else shown
                return f"{shown}:{name}"
    return None


def _instrumented(loaded_app: Any, config: Any, plan: Plan) -> Any:
    """`loaded_app` with the agent; inside uvicorn's proxy-headers middleware when there is
    one, so requests are seen with the client address it puts in the scope."""
    from inspector.agent.instrumented import InstrumentedApp, is_instrumented, reconfigure
    from inspector.agent.probes import wrap_asgi  # noqa: F401 - fail here, not per request

    agent_config = plan.config
    if agent_config.app is None:
        agent_config = dataclasses.replace(agent_config, app=app_name(config))
    on_error = _report_failure if plan.strict else None
    announce = _announce if plan.announce else None

    def wrap(app: Any) -> Any:
        return InstrumentedApp(
            app,
            agent_config,
            strict=plan.strict,
            on_start_error=on_error,
            on_started=announce,
        )

    for candidate in (loaded_app, getattr(loaded_app, "app", None)):
        if candidate is not None and is_instrumented(candidate):
            # The app calls instrument() itself: one agent, configured where it was started.
            if not reconfigure(candidate, agent_config):
                warn("the app's own agent has started already; the run's options do not apply")
            return loaded_app
    if type(loaded_app).__name__ == "ProxyHeadersMiddleware" and hasattr(loaded_app, "app"):
        loaded_app.app = wrap(loaded_app.app)
        return loaded_app
    return wrap(loaded_app)


def _report_failure(message: str) -> None:
    from inspector.agent.bootstrap import report_failure

    report_failure(message)


def _announce(host: str, port: int) -> None:
    warn(
        f"agent of pid {os.getpid()} listening on {host}:{port}; "
        f"attach with: inspector attach {host}:{port}"
    )

"""Run at the start of every Python process under `inspector run -- COMMAND` (via PYTHONPATH).

It hands over to `inspector.agent.autoload`, then runs the ``sitecustomize`` this one hides,
if the interpreter has one, so the command's own start-up is unchanged. It must never fail:
a process that cannot load the agent runs without it and says so once.
"""

import os
import sys


def _autoload() -> None:
    if not os.environ.get("INSPECTOR_AUTOLOAD_CONFIG"):
        return
    try:
        from inspector.agent.autoload import install_from_environment
    except Exception as error:
        _warn_when_uvicorn_loads(
            f"inspector: {sys.executable} cannot load the inspector agent ({error}); "
            "this server runs without it"
        )
        return
    try:
        install_from_environment()
    except Exception as error:
        print(f"inspector: the agent could not be set up ({error!r})", file=sys.stderr)


def _warn_when_uvicorn_loads(message: str) -> None:
    """Say `message` once, and only in a process that goes on to import uvicorn: the command's
    other Python processes (a migration script, a shell's helpers) stay silent."""
    import importlib.abc

    class _Warner(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: object, target: object = None) -> None:
            if fullname == "uvicorn":
                sys.meta_path.remove(self)
                print(message, file=sys.stderr)
            return None

    sys.meta_path.insert(0, _Warner())


def _run_hidden_sitecustomize() -> None:
    """Find the next ``sitecustomize`` on sys.path, past this directory, and run it."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    ours = sys.modules.get("sitecustomize")
    try:
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)
    except Exception as error:
        if ours is not None:
            sys.modules["sitecustomize"] = ours
        print(f"inspector: the interpreter's sitecustomize failed: {error!r}", file=sys.stderr)


_autoload()
_run_hidden_sitecustomize()

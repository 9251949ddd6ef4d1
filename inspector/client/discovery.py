"""Find every uvicorn-like server on this machine and say which process to attach to.

Agents register themselves (one file per process in the per-user runtime directory), so those
come first and are exact. Servers started without the agent are found by their command lines
with psutil. The process tree matters: `uvicorn --reload` and `uvicorn --workers N` start a
parent that never serves a request, and their workers are `multiprocessing` spawn children whose
command line names neither uvicorn nor the app; `multiprocessing` also starts a resource tracker
child that is not a worker. The listening socket is bound in the parent and inherited, so a port
shows up on the parent and on every worker: port lookups prefer the leaves.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import psutil

Role = Literal[
    "single",  # one process that serves requests itself
    "parent",  # the `--workers N` supervisor: serves nothing, restarts workers
    "reloader",  # the `--reload` watcher: serves nothing, restarts its one child on changes
    "worker",  # a child of a parent or a reloader: serves requests
    "gunicorn-master",
    "gunicorn-worker",
]
ServerKind = Literal["uvicorn", "gunicorn", "hypercorn", "fastapi-cli", "inspector", "python"]

SERVING_ROLES: Final[frozenset[str]] = frozenset({"single", "worker", "gunicorn-worker"})

_SPAWN_MARKER: Final = "from multiprocessing.spawn import spawn_main"
_FORKSERVER_MARKER: Final = "from multiprocessing.forkserver import main"
_TRACKER_MARKER: Final = "from multiprocessing.resource_tracker import main"
_PYTHON_NAME: Final = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?[a-z]?(\.exe)?$")
_APP_SPEC: Final = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(.*\))?$")
_SERVER_ENTRY_POINTS: Final[Mapping[str, ServerKind]] = {
    "uvicorn": "uvicorn",
    "gunicorn": "gunicorn",
    "hypercorn": "hypercorn",
    "fastapi": "fastapi-cli",
    "inspector": "inspector",
}
_CLI_SUBCOMMANDS: Final[Mapping[str, frozenset[str]]] = {
    # Only these subcommands start a server; `inspector ps` or `fastapi --help` do not.
    "fastapi-cli": frozenset({"dev", "run"}),
    "inspector": frozenset({"run", "demo"}),
}
_OPTIONS_WITH_VALUE: Final = frozenset(
    # Interpreter options that consume the next argument.
    {"-W", "-X", "-Q"}
)


ADD_AGENT_HINT: Final = (
    "run it with `inspector run {app}` or add `app = inspector.agent.instrument(app)`"
)


UNREGISTERED_HINT: Final = (
    "started by `inspector run` but not registered here: it runs as another user or with "
    "another INSPECTOR_RUNTIME_DIR (its agent listens on one of its ports)"
)


def missing_agent_hint(server: str, app: str | None) -> str:
    """How to get an agent into a server that shows none."""
    if server == "inspector":
        return UNREGISTERED_HINT
    return ADD_AGENT_HINT.format(app=app or "APP")


@dataclass(frozen=True)
class Target:
    """One process of a server, as `inspector ps` shows it."""

    pid: int
    ppid: int
    role: Role
    server: ServerKind
    app: str | None
    agent: tuple[str, int] | None
    """The agent's termui address, or None when the process runs no inspector agent."""
    cpu_percent: float | None
    rss: int | None
    """Resident memory, bytes."""
    uptime: float | None
    """Seconds since the process started."""
    children: tuple[int, ...] = ()
    """Pids of the server processes under this one (workers), resource tracker excluded."""
    cmdline: tuple[str, ...] = ()
    listening: tuple[int, ...] = ()
    """TCP ports this process listens on (inherited sockets included)."""
    worker: int | None = None
    """Index among `--workers N`, when the agent reported it."""
    agent_version: str | None = None
    webui_port: int | None = None

    @property
    def serves_requests(self) -> bool:
        """False for supervisors and reloaders: attaching to them shows nothing useful."""
        return self.role in SERVING_ROLES

    @property
    def agent_address(self) -> str | None:
        return f"{self.agent[0]}:{self.agent[1]}" if self.agent else None

    @property
    def hint(self) -> str | None:
        """How to get an agent into this server, for processes that have none."""
        if self.agent is not None:
            return None
        if not self.serves_requests:
            return f"serves no requests; attach to its workers ({_pids(self.children)})"
        return missing_agent_hint(self.server, self.app)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "role": self.role,
            "server": self.server,
            "app": self.app,
            "agent": self.agent_address,
            "agent_version": self.agent_version,
            "webui_port": self.webui_port,
            "serves_requests": self.serves_requests,
            "worker": self.worker,
            "cpu_percent": self.cpu_percent,
            "rss": self.rss,
            "uptime": self.uptime,
            "children": list(self.children),
            "listening": list(self.listening),
            "cmdline": list(self.cmdline),
            "hint": self.hint,
        }


@dataclass
class _Proc:
    """What one process scan knows about a process, before it becomes a Target."""

    pid: int
    ppid: int
    cmdline: tuple[str, ...]
    create_time: float
    kind: ServerKind | None = None
    spawn_child: bool = False
    tracker: bool = False
    registration: Any = None
    children: list[int] = field(default_factory=list)


# --- command lines ---------------------------------------------------------------------------


def entry_point(cmdline: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The program a command line runs and its arguments: `python -m uvicorn x` → uvicorn, (x,).

    Interpreter options are skipped; a script path is reduced to its name without `.py`; `-c`
    code is returned as ("-c", (code, ...)).
    """
    if not cmdline:
        return "", ()
    first = os.path.basename(cmdline[0])
    if not _PYTHON_NAME.match(first):
        return _script_name(cmdline[0]), tuple(cmdline[1:])
    index = 1
    while index < len(cmdline):
        arg = cmdline[index]
        if arg == "-m" and index + 1 < len(cmdline):
            return cmdline[index + 1], tuple(cmdline[index + 2 :])
        if arg == "-c":
            return "-c", tuple(cmdline[index + 1 :])
        if arg in _OPTIONS_WITH_VALUE:
            index += 2
            continue
        if arg.startswith("-") and arg != "-":
            index += 1
            continue
        return _script_name(arg), tuple(cmdline[index + 1 :])
    return "python", ()


def _script_name(path: str) -> str:
    name = os.path.basename(path)
    return name[:-3] if name.endswith(".py") else name


def server_kind(cmdline: Sequence[str]) -> ServerKind | None:
    """Which server a command line starts, or None for anything else (including workers)."""
    if len(cmdline) == 1 and cmdline[0].startswith("gunicorn:"):
        return "gunicorn"  # setproctitle: "gunicorn: master [app]" / "gunicorn: worker [app]"
    program, args = entry_point(cmdline)
    if program.endswith(".__main__"):
        program = program[: -len(".__main__")]
    kind = _SERVER_ENTRY_POINTS.get(program)
    if kind is None:
        return None
    subcommands = _CLI_SUBCOMMANDS.get(kind)
    if subcommands is not None:
        first = next((arg for arg in args if not arg.startswith("-")), None)
        if first not in subcommands:
            return None
    return kind


def app_of(cmdline: Sequence[str], kind: ServerKind | None) -> str | None:
    """The app a server command line serves: "main:app", or a path for fastapi-cli."""
    if len(cmdline) == 1 and cmdline[0].startswith("gunicorn:"):
        match = re.search(r"\[(.+)\]", cmdline[0])
        return match.group(1) if match else None
    program, args = entry_point(cmdline)
    for arg in args:
        if _APP_SPEC.match(arg):
            return arg
    if kind in ("fastapi-cli", "python"):
        paths = [arg for arg in args if not arg.startswith("-") and arg not in ("dev", "run")]
        if kind == "python":
            return program + ".py" if program not in ("", "-c", "python") else None
        return paths[0] if paths else None
    return None


def is_spawn_child(cmdline: Sequence[str]) -> bool:
    """A `multiprocessing` spawn (or forkserver) child: how uvicorn starts workers and reloads."""
    return any(_SPAWN_MARKER in arg or _FORKSERVER_MARKER in arg for arg in cmdline)


def is_resource_tracker(cmdline: Sequence[str]) -> bool:
    """multiprocessing's helper child: not a worker, never shown."""
    return any(_TRACKER_MARKER in arg for arg in cmdline)


def _flag_value(args: Sequence[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _asks_for_reload(cmdline: Sequence[str], environ: Mapping[str, str]) -> bool | None:
    """True for `--reload`, False for `--workers N`, None when the command line does not say."""
    _, args = entry_point(cmdline)
    if "--reload" in args or program_is(cmdline, "fastapi-cli", "dev"):
        return True
    if _flag_value(args, "--workers") is not None or "-w" in args:
        return False
    if environ.get("UVICORN_RELOAD", "").lower() in ("1", "true", "yes"):
        return True
    if environ.get("UVICORN_WORKERS") or environ.get("WEB_CONCURRENCY"):
        return False
    return None


def program_is(cmdline: Sequence[str], kind: ServerKind, subcommand: str) -> bool:
    if server_kind(cmdline) != kind:
        return False
    _, args = entry_point(cmdline)
    return next((arg for arg in args if not arg.startswith("-")), None) == subcommand


# --- registrations ---------------------------------------------------------------------------


def live_registrations() -> dict[int, Any]:
    """Registrations of agents whose process is still alive; stale files are removed.

    A pid can be reused after its process died without removing its file (SIGKILL), so a
    registration counts only if the process with that pid was created before the agent
    registered.
    """
    try:
        from inspector.registration import read_registrations, remove_registration
    except ImportError:
        return {}
    live: dict[int, Any] = {}
    for registration in read_registrations():
        if _registration_alive(registration):
            live[registration.pid] = registration
        else:
            try:
                remove_registration(registration.pid)
            except OSError:
                pass
    return live


def _registration_alive(registration: Any) -> bool:
    try:
        process = psutil.Process(registration.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        started_at = getattr(registration, "started_at", None)
        if isinstance(started_at, (int, float)) and process.create_time() > started_at + 2.0:
            return False  # the pid now belongs to a newer process
        return True
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # another user's process that exists


# --- the scan --------------------------------------------------------------------------------


def _scan() -> dict[int, _Proc]:
    procs: dict[int, _Proc] = {}
    for process in psutil.process_iter(["pid", "ppid", "cmdline", "create_time"]):
        info = process.info
        cmdline = tuple(info.get("cmdline") or ())
        procs[info["pid"]] = _Proc(
            pid=info["pid"],
            ppid=info.get("ppid") or 0,
            cmdline=cmdline,
            create_time=info.get("create_time") or 0.0,
            kind=server_kind(cmdline),
            spawn_child=is_spawn_child(cmdline),
            tracker=is_resource_tracker(cmdline),
        )
    for proc in procs.values():
        parent = procs.get(proc.ppid)
        if parent is not None and proc.pid != proc.ppid:
            parent.children.append(proc.pid)
    return procs


def _select(procs: dict[int, _Proc], registrations: Mapping[int, Any], own: set[int]) -> set[int]:
    """The pids worth showing: servers, their workers, agents and the parents of agents."""
    chosen: set[int] = set()
    for pid, registration in registrations.items():
        if pid in procs:
            procs[pid].registration = registration
            chosen.add(pid)
    roots = {proc.pid for proc in procs.values() if proc.kind is not None} - own
    # `python main.py` calling uvicorn.run(workers=2): the agents' parent names no server.
    for pid in list(chosen):
        proc = procs[pid]
        if proc.spawn_child and proc.ppid in procs and proc.ppid not in own:
            roots.add(proc.ppid)
    chosen |= roots
    for pid in roots:
        for child in procs[pid].children:
            child_proc = procs[child]
            # Spawn children of a worker (an app's own process pool) are not workers.
            if child_proc.spawn_child and not child_proc.tracker:
                chosen.add(child)
    return chosen


def _role(proc: _Proc, procs: Mapping[int, _Proc], chosen: set[int]) -> tuple[Role, list[int]]:
    children = [child for child in proc.children if child in chosen]
    parent = procs.get(proc.ppid)
    if parent is None or parent.pid not in chosen or parent.pid == proc.pid:
        parent = None
    if proc.kind == "gunicorn":
        if (parent is not None and parent.kind == "gunicorn") or proc.cmdline[0].startswith(
            "gunicorn: worker"
        ):
            return "gunicorn-worker", children
        return "gunicorn-master", children
    if parent is not None and (proc.spawn_child or proc.registration is not None):
        return "worker", children
    if children:
        reload = _asks_for_reload(proc.cmdline, _environ(proc.pid))
        if reload is None:
            reload = len(children) == 1
        return ("reloader" if reload else "parent"), children
    return "single", children


def _environ(pid: int) -> Mapping[str, str]:
    try:
        environ: dict[str, str] = psutil.Process(pid).environ()
        return environ
    except (psutil.Error, OSError):
        return {}


def _server_of(pid: int, procs: Mapping[int, _Proc], chosen: set[int]) -> ServerKind:
    """The server kind of a process's tree: the nearest chosen ancestor that names one."""
    seen: set[int] = set()
    current: _Proc | None = procs.get(pid)
    while current is not None and current.pid not in seen:
        seen.add(current.pid)
        if current.kind is not None:
            return current.kind
        parent = procs.get(current.ppid)
        current = parent if parent is not None and parent.pid in chosen else None
    return "python"


def _app_for(pid: int, procs: Mapping[int, _Proc], chosen: set[int]) -> str | None:
    seen: set[int] = set()
    current: _Proc | None = procs.get(pid)
    while current is not None and current.pid not in seen:
        seen.add(current.pid)
        registration = current.registration
        if registration is not None and getattr(registration, "app", None):
            return str(registration.app)
        if not current.spawn_child:
            app = app_of(current.cmdline, current.kind or "python")
            if app:
                return app
        parent = procs.get(current.ppid)
        current = parent if parent is not None and parent.pid in chosen else None
    return None


def _stats(
    pids: Iterable[int], sample_seconds: float
) -> dict[int, tuple[float | None, int | None, tuple[int, ...]]]:
    """CPU %, RSS and listening ports per pid; CPU is sampled over `sample_seconds` together."""
    processes: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if sample_seconds > 0:
                process.cpu_percent(None)
            processes[pid] = process
        except psutil.Error:
            continue
    if sample_seconds > 0 and processes:
        time.sleep(sample_seconds)
    now = time.time()
    stats: dict[int, tuple[float | None, int | None, tuple[int, ...]]] = {}
    for pid, process in processes.items():
        cpu: float | None = None
        rss: int | None = None
        try:
            with process.oneshot():
                if sample_seconds > 0:
                    cpu = process.cpu_percent(None)
                else:
                    times = process.cpu_times()
                    age = max(now - process.create_time(), 1e-6)
                    cpu = 100.0 * (times.user + times.system) / age
                rss = process.memory_info().rss
        except psutil.Error:
            pass
        stats[pid] = (cpu, rss, _listening_ports(process))
    return stats


def _listening_ports(process: psutil.Process) -> tuple[int, ...]:
    try:
        connections = process.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return ()
    return tuple(
        sorted({c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN and c.laddr})
    )


def discover(*, sample_seconds: float = 0.1) -> list[Target]:
    """Every server process on this machine, parents before their workers.

    `sample_seconds` is how long CPU use is measured (all processes at once); 0 reports the
    average over each process's lifetime instead, without waiting.
    """
    registrations = live_registrations()
    procs = _scan()
    own = _own_lineage(procs)
    chosen = _select(procs, registrations, own)
    stats = _stats(chosen, sample_seconds)
    now = time.time()
    targets: dict[int, Target] = {}
    for pid in chosen:
        proc = procs[pid]
        role, children = _role(proc, procs, chosen)
        registration = proc.registration
        cpu, rss, ports = stats.get(pid, (None, None, ()))
        agent = None
        if registration is not None:
            agent = (str(registration.host), int(registration.port))
        targets[pid] = Target(
            pid=pid,
            ppid=proc.ppid,
            role=role,
            server=_server_of(pid, procs, chosen),
            app=_app_for(pid, procs, chosen),
            agent=agent,
            cpu_percent=cpu,
            rss=rss,
            uptime=max(0.0, now - proc.create_time) if proc.create_time else None,
            children=tuple(sorted(children)),
            cmdline=proc.cmdline,
            listening=ports,
            worker=getattr(registration, "worker", None),
            agent_version=getattr(registration, "agent_version", None),
            webui_port=getattr(registration, "webui_port", None),
        )
    return _tree_order(targets)


def _own_lineage(procs: Mapping[int, _Proc]) -> set[int]:
    """This process and its ancestors: `inspector ps` must not list itself."""
    lineage: set[int] = set()
    pid = os.getpid()
    while pid in procs and pid not in lineage:
        lineage.add(pid)
        pid = procs[pid].ppid
    return lineage


def _tree_order(targets: Mapping[int, Target]) -> list[Target]:
    ordered: list[Target] = []
    placed: set[int] = set()

    def place(target: Target) -> None:
        if target.pid in placed:
            return
        placed.add(target.pid)
        ordered.append(target)
        for child in target.children:
            if child in targets:
                place(targets[child])

    for target in sorted(targets.values(), key=lambda t: t.pid):
        if target.ppid not in targets:
            place(target)
    for target in sorted(targets.values(), key=lambda t: t.pid):
        place(target)  # cycles or orphans, should any appear
    return ordered


def depth_of(target: Target, targets: Sequence[Target]) -> int:
    """How deep `target` sits under its root within `targets` (0 for a root)."""
    by_pid = {t.pid: t for t in targets}
    depth = 0
    current = target
    seen = {target.pid}
    while current.ppid in by_pid and current.ppid not in seen:
        seen.add(current.ppid)
        current = by_pid[current.ppid]
        depth += 1
    return depth


# --- lookups ---------------------------------------------------------------------------------


def subtree(pid: int, targets: Sequence[Target]) -> list[Target]:
    """`pid`'s target and every descendant of it among `targets` (empty if `pid` is not one)."""
    by_pid = {t.pid: t for t in targets}
    root = by_pid.get(pid)
    if root is None:
        return []
    found: list[Target] = []
    stack = [root]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if current.pid in seen:
            continue
        seen.add(current.pid)
        found.append(current)
        stack.extend(by_pid[child] for child in current.children if child in by_pid)
    return found


def workers_of(pid: int, targets: Sequence[Target] | None = None) -> list[Target]:
    """The processes that serve requests for `pid`: itself if it serves, else its workers."""
    targets = discover(sample_seconds=0) if targets is None else targets
    return sorted((t for t in subtree(pid, targets) if t.serves_requests), key=lambda t: t.pid)


def agent_address_for_pid(pid: int) -> tuple[str, int] | None:
    """The agent address to attach to for `pid`.

    A registered agent answers for itself. A reloader or a parent with exactly one worker that
    has an agent resolves to that worker (with `--reload` the child is the one that serves).
    Otherwise None; `explain_pid` says why in words.
    """
    registration = live_registrations().get(pid)
    if registration is not None:
        return (str(registration.host), int(registration.port))
    if not psutil.pid_exists(pid):
        return None
    served = [t for t in workers_of(pid) if t.agent is not None and t.pid != pid]
    if len(served) == 1:
        return served[0].agent
    return None


def explain_pid(pid: int) -> str:
    """One line saying why `pid` has no single agent address, and what to do instead."""
    if not psutil.pid_exists(pid):
        return f"no process with pid {pid}"
    targets = discover(sample_seconds=0)
    by_pid = {t.pid: t for t in targets}
    target = by_pid.get(pid)
    if target is None:
        return (
            f"pid {pid} is not a uvicorn, gunicorn, hypercorn or fastapi server with an "
            "inspector agent (see `inspector ps`)"
        )
    workers = [t for t in workers_of(pid, targets) if t.pid != pid]
    with_agent = [t for t in workers if t.agent is not None]
    if not target.serves_requests and len(with_agent) > 1:
        listed = ", ".join(f"{t.pid} ({t.agent_address})" for t in with_agent)
        return (
            f"pid {pid} is the {target.role} of {len(with_agent)} workers and serves no "
            f"requests itself; pick a worker with --pid: {listed}"
        )
    if not target.serves_requests and not with_agent:
        first = f"`inspector inject {target.children[0]}` for each, or " if target.children else ""
        return (
            f"pid {pid} is a {target.role} and serves no requests; its workers "
            f"({_pids(target.children)}) run no inspector agent: {first}"
            + ADD_AGENT_HINT.format(app=target.app or "APP")
        )
    return (
        f"no agent in pid {pid}; run `inspector inject {pid}` or pass --inject (or start it with "
        f"`inspector run {target.app or 'APP'}`)"
    )


def targets_listening_on(port: int, targets: Sequence[Target] | None = None) -> list[Target]:
    """Processes listening on `port`, workers first: an inherited socket shows on the parent
    too, but only the leaves serve."""
    targets = discover(sample_seconds=0) if targets is None else targets
    matching = [t for t in targets if port in t.listening]
    return sorted(matching, key=lambda t: (not t.serves_requests, bool(t.children), t.pid))


def _pids(pids: Iterable[int]) -> str:
    listed = ", ".join(str(pid) for pid in pids)
    return listed or "none yet"

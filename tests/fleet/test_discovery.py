"""`inspector ps` and discovery against real uvicorn process trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from inspector.client import discovery
from tests.fleet.conftest import APPS, REPO, VENV_BIN, Server, wait_until

UVICORN = str(VENV_BIN / "uvicorn")
INSPECTOR = str(VENV_BIN / "inspector")


def _ps_json() -> list[dict[str, Any]]:
    done = subprocess.run(
        [INSPECTOR, "ps", "--json"], capture_output=True, text=True, timeout=30, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["targets"])


def _tree(root_pid: int) -> dict[int, dict[str, Any]]:
    return {t["pid"]: t for t in _ps_json() if t["pid"] == root_pid or t["ppid"] == root_pid}


def _wait_for_tree(root_pid: int, size: int) -> dict[int, dict[str, Any]]:
    """The parent and its workers once every one of them holds the listening socket (the
    parent binds it, but it listens only once a worker serves)."""

    def complete() -> dict[int, dict[str, Any]] | None:
        tree = _tree(root_pid)
        ready = len(tree) == size and all(t["listening"] for t in tree.values())
        return tree if ready else None

    return wait_until(
        complete, message=f"`inspector ps` never showed {root_pid} with {size - 1} workers"
    )


def _spawn_children(pid: int, count: int) -> list[psutil.Process]:
    """Wait until `pid` has `count` workers and a resource tracker; return all its children."""

    def ready() -> list[psutil.Process] | None:
        children = psutil.Process(pid).children()
        workers = [c for c in children if discovery.is_spawn_child(c.cmdline())]
        return children if len(workers) == count else None

    return wait_until(ready, timeout=20, message=f"{pid} never had {count} workers")


@pytest.mark.e2e
def test_workers_without_agent(servers: list[Server]) -> None:
    server = Server(
        [UVICORN, "--app-dir", str(APPS), "fleet_app:app", "--port", "0", "--workers", "2"]
    )
    servers.append(server)
    children = _spawn_children(server.pid, 2)
    trackers = [c.pid for c in children if discovery.is_resource_tracker(c.cmdline())]

    tree = _wait_for_tree(server.pid, 3)

    parent = tree[server.pid]
    workers = [t for pid, t in tree.items() if pid != server.pid]
    assert parent["role"] == "parent" and not parent["serves_requests"]
    assert parent["server"] == "uvicorn" and parent["app"] == "fleet_app:app"
    assert sorted(parent["children"]) == sorted(w["pid"] for w in workers)
    assert [w["role"] for w in workers] == ["worker", "worker"]
    assert all(w["agent"] is None and w["app"] == "fleet_app:app" for w in workers)
    assert all("inspector run fleet_app:app" in w["hint"] for w in workers)
    assert trackers and not set(trackers) & set(tree), "the resource tracker is not a worker"
    assert not set(trackers) & {t["pid"] for t in _ps_json()}
    port = parent["listening"][0]
    assert all(w["listening"] == [port] for w in workers), "the socket is inherited"
    leaves = discovery.targets_listening_on(port)
    assert leaves[0].role == "worker" and leaves[-1].pid == server.pid

    # The table: workers indented under the parent, and how to add the agent.
    table = subprocess.run(
        [INSPECTOR, "ps"], capture_output=True, text=True, timeout=30, cwd=REPO
    ).stdout
    lines = table.splitlines()
    parent_line = next(line for line in lines if line.startswith(f"{server.pid} "))
    assert "parent" in parent_line and "fleet_app:app" in parent_line
    for worker in workers:
        worker_line = next(line for line in lines if line.strip().startswith(f"{worker['pid']} "))
        assert worker_line.startswith(f"  {worker['pid']}") and "no agent" in worker_line
    assert (
        f"{server.pid}: no inspector agent in this server: run it with "
        "`inspector run fleet_app:app` or add `app = inspector.agent.instrument(app)`"
    ) in table

    # Resolving a pid without an agent explains itself.
    assert discovery.agent_address_for_pid(server.pid) is None
    assert "serves no requests" in discovery.explain_pid(server.pid)
    assert "inspector run" in discovery.explain_pid(workers[0]["pid"])


@pytest.mark.e2e
def test_reload_parent_is_the_reloader(
    servers: list[Server], tmp_path: Path, runtime_dir: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "fleet_app.py").write_text((APPS / "fleet_app.py").read_text())
    (app_dir / "instrumented.py").write_text(
        "import inspector.agent\n"
        "from fleet_app import app as plain\n"
        "app = inspector.agent.instrument(plain, inspector.agent.AgentConfig(port=0))\n"
    )
    server = Server(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(app_dir),
            "instrumented:app",
            "--port",
            "0",
            "--reload",
            "--reload-dir",
            str(app_dir),
        ]
    )
    servers.append(server)
    _spawn_children(server.pid, 1)

    tree = _wait_for_tree(server.pid, 2)

    reloader = tree[server.pid]
    (child,) = [t for pid, t in tree.items() if pid != server.pid]
    assert reloader["role"] == "reloader" and not reloader["serves_requests"]
    assert reloader["server"] == "uvicorn" and reloader["agent"] is None
    assert child["role"] == "worker" and child["serves_requests"]
    assert [t.pid for t in discovery.workers_of(server.pid)] == [child["pid"]]
    # The agent registers once the child has started its app.
    address = wait_until(lambda: discovery.agent_address_for_pid(child["pid"]))
    assert discovery.agent_address_for_pid(server.pid) == address, "the reloader leads to it"


@pytest.mark.e2e
def test_stale_registration_of_a_reused_pid_is_removed(
    runtime_dir: Path, servers: list[Server]
) -> None:
    from inspector.registration import Registration, read_registrations, write_registration

    # A live process whose pid a dead agent once registered: created after the registration.
    sleeper = Server([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"])
    servers.append(sleeper)
    sleeper.wait_for_output("up")
    write_registration(
        Registration(
            pid=sleeper.pid, ppid=1, host="127.0.0.1", port=1, started_at=time.time() - 3600
        )
    )
    assert [r.pid for r in read_registrations()] == [sleeper.pid]

    assert all(t.pid != sleeper.pid for t in discovery.discover(sample_seconds=0))
    assert not (runtime_dir / f"{sleeper.pid}.json").exists()


@pytest.mark.parametrize(
    ("cmdline", "kind", "app"),
    [
        (["/v/bin/python3", "/v/bin/uvicorn", "main:app", "--port", "8000"], "uvicorn", "main:app"),
        (
            ["python", "-m", "uvicorn", "--host", "0.0.0.0", "pkg.api:create_app()"],
            "uvicorn",
            "pkg.api:create_app()",
        ),
        (["uvicorn", "app:app", "--reload"], "uvicorn", "app:app"),
        (
            [
                "/v/bin/python",
                "/v/bin/gunicorn",
                "-k",
                "uvicorn.workers.UvicornWorker",
                "-b",
                "0.0.0.0:8000",
                "main:app",
            ],
            "gunicorn",
            "main:app",
        ),
        (["gunicorn: master [main:app]"], "gunicorn", "main:app"),
        (["hypercorn", "main:app", "--bind", "localhost:8000"], "hypercorn", "main:app"),
        (["/v/bin/python", "/v/bin/fastapi", "dev", "main.py"], "fastapi-cli", "main.py"),
        (["/v/bin/python", "/v/bin/fastapi", "--help"], None, None),
        (
            ["/v/bin/python", "/v/bin/inspector", "run", "app:app", "--workers", "2"],
            "inspector",
            "app:app",
        ),
        (["/v/bin/python", "/v/bin/inspector", "ps"], None, None),
        (
            [
                "python",
                "-c",
                "from multiprocessing.spawn import spawn_main; spawn_main()",
                "--multiprocessing-fork",
            ],
            None,
            None,
        ),
        (["grep", "uvicorn"], None, None),
        (["python", "-m", "pytest", "-k", "uvicorn"], None, None),
    ],
)
def test_command_lines(cmdline: list[str], kind: str | None, app: str | None) -> None:
    assert discovery.server_kind(cmdline) == kind
    if kind is not None:
        assert discovery.app_of(cmdline, kind) == app  # type: ignore[arg-type]


def test_own_process_is_not_listed() -> None:
    assert all(t.pid != os.getpid() for t in discovery.discover(sample_seconds=0))


@pytest.mark.e2e
def test_inspector_run_workers_have_agent_addresses(tmp_path: Path) -> None:
    from tests.helpers.server import inspector_run

    with inspector_run("tests.apps.fleet_app:app", tmp_path, workers=2) as server:
        env = {**os.environ, "INSPECTOR_RUNTIME_DIR": str(server.runtime_dir)}
        done = subprocess.run(
            [INSPECTOR, "ps", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        targets = {t["pid"]: t for t in json.loads(done.stdout)["targets"]}
        registered = {r.pid: r for r in server.registrations()}

        parent = targets[server.process.pid]
        assert parent["role"] == "parent" and parent["server"] == "inspector"
        assert parent["app"] == "tests.apps.fleet_app:app" and parent["agent"] is None
        assert sorted(parent["children"]) == sorted(registered)
        for pid, registration in registered.items():
            worker = targets[pid]
            assert worker["role"] == "worker" and worker["ppid"] == server.process.pid
            assert worker["agent"] == f"{registration.host}:{registration.port}"
            assert worker["hint"] is None
        assert len({t["agent"] for t in targets.values() if t["ppid"] == server.process.pid}) == 2

        table = subprocess.run(
            [INSPECTOR, "ps"], capture_output=True, text=True, timeout=30, cwd=REPO, env=env
        ).stdout
        for registration in registered.values():
            line = next(
                row for row in table.splitlines() if row.strip().startswith(f"{registration.pid} ")
            )
            assert line.startswith("  ") and f"{registration.host}:{registration.port}" in line
        assert f"{server.process.pid}: no inspector agent" not in table

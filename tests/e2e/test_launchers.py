"""`inspector run -- COMMAND`: the agent in every uvicorn server, however FastAPI is started.

Each test starts a real server the way its users do (uvicorn's CLI with options `inspector run
APP` never knew, `fastapi run` and `fastapi dev`, gunicorn with both uvicorn worker classes,
`--workers`, `--reload`, `python main.py`, `uvicorn.Server.serve()` in a larger program) and
talks to the agent over its real socket.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest

from inspector.model import Snapshot
from tests.helpers.server import HOST, REPO_ROOT, RunningServer, free_port, launched
from tests.helpers.telnet import TermuiClient

pytestmark = [pytest.mark.e2e]

APP = "tests.apps.launch_app:app"
BIN = Path(sys.executable).parent


def inspector_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "inspector", "run", "--inspect-port", "0", *args]


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to this Python")
    return str(path)


def snapshot(host: str, port: int) -> Snapshot:
    with TermuiClient(host, port, timeout=10) as client:
        payload = client.command("inspector-snapshot --no-stacks").payload
    assert isinstance(payload, Snapshot)
    return payload


def serving_snapshots(server: RunningServer) -> list[Snapshot]:
    return [snapshot(r.host, r.port) for r in server.registrations()]


def wait_for(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )


def park_a_request(server: RunningServer) -> threading.Thread:
    """A request to /park, left waiting in a thread (the server is killed at the end)."""

    def call() -> None:
        try:
            urllib.request.urlopen(server.url("/park"), timeout=30).read()
        except Exception:
            pass

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def assert_requests_are_seen(server: RunningServer) -> None:
    parking = park_a_request(server)

    def parked() -> bool:
        return any(
            request.path == "/park"
            for shot in serving_snapshots(server)
            for request in shot.requests
        )

    wait_for(parked)
    deadline = time.monotonic() + 15
    while parking.is_alive() and time.monotonic() < deadline:
        server.get("/release")  # each worker has its own Event: until the parked one's is set
        parking.join(timeout=0.2)
    assert not parking.is_alive()


def blocking_line(app_file: str) -> str:
    """ "file.py:LINE" of the line marked `# marker: blocks` in a test app."""
    lines = (REPO_ROOT / app_file).read_text(encoding="utf-8").splitlines()
    [number] = [i for i, line in enumerate(lines, start=1) if line.endswith("# marker: blocks")]
    return f"{Path(app_file).name}:{number}"


def assert_a_blocked_loop_is_named(
    server: RunningServer, app_file: str = "tests/apps/launch_app.py"
) -> None:
    """`doctor --pid` on the process the user started names the line that blocked the loop."""
    server.get("/block")
    result = cli("doctor", "--pid", str(server.process.pid), env=_runtime(server))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "loop-blocked" in result.stdout or "blocked" in result.stdout
    assert blocking_line(app_file) in result.stdout, result.stdout


def assert_stops_cleanly(server: RunningServer) -> None:
    """SIGTERM to the process the user started: it exits soon and every agent unregisters."""
    assert server.stop(signal.SIGTERM, timeout=15) < 15
    assert server.registrations() == []


def test_uvicorn_cli_with_options_the_short_form_never_had(tmp_path: Path) -> None:
    port = free_port()
    command = inspector_run(
        "--",
        tool("uvicorn"),
        APP,
        *("--port", str(port), "--no-access-log", "--forwarded-allow-ips", "*"),
        *("--timeout-graceful-shutdown", "2", "--header", "X-Served-By:shop"),
    )
    with launched(command, tmp_path, http_port=port) as server:
        [registration] = server.registrations()
        assert registration.pid == server.process.pid  # exec: the command is this process
        assert registration.app == APP
        with urllib.request.urlopen(server.url("/"), timeout=10) as response:
            assert response.headers["X-Served-By"] == "shop"
        assert_requests_are_seen(server)
        assert '"GET / HTTP/1.1"' not in server.output()  # --no-access-log reached uvicorn
        assert_a_blocked_loop_is_named(server)
        assert_stops_cleanly(server)


def test_fastapi_run(tmp_path: Path) -> None:
    port = free_port()
    command = inspector_run(
        "--", tool("fastapi"), "run", "tests/apps/launch_app.py", "--port", str(port)
    )
    with launched(command, tmp_path, http_port=port) as server:
        [registration] = server.registrations()
        assert registration.app is not None and registration.app.endswith(":app")
        assert_requests_are_seen(server)
        assert_a_blocked_loop_is_named(server)
        assert_stops_cleanly(server)


def test_fastapi_dev_and_reload_bring_the_agent_back(tmp_path: Path) -> None:
    source = tmp_path / "reloading_app.py"
    source.write_text((REPO_ROOT / "tests/apps/launch_app.py").read_text(), encoding="utf-8")
    port = free_port()
    command = inspector_run("--", tool("fastapi"), "dev", str(source), "--port", str(port))
    with launched(command, tmp_path, http_port=port, cwd=tmp_path, ready_timeout=40) as server:
        [first] = server.registrations()
        assert first.pid != server.process.pid  # the reloader's child serves, not the reloader
        time.sleep(0.5)  # the watcher takes its first look before it notices changes
        source.write_text(source.read_text() + "\n# changed\n", encoding="utf-8")

        def reloaded() -> bool:
            registrations = server.registrations()
            return len(registrations) == 1 and registrations[0].pid != first.pid

        wait_for(reloaded, timeout=30)
        [second] = server.registrations()
        assert snapshot(second.host, second.port).process.pid == second.pid


@pytest.mark.parametrize(
    "worker_class", ["uvicorn.workers.UvicornWorker", "uvicorn_worker.UvicornWorker"]
)
def test_gunicorn_workers_each_get_an_agent_found_from_the_master(
    tmp_path: Path, worker_class: str
) -> None:
    if worker_class.startswith("uvicorn_worker"):
        pytest.importorskip("uvicorn_worker")
    port = free_port()
    command = inspector_run(
        "--",
        tool("gunicorn"),
        *("-w", "2", "-k", worker_class, "-b", f"{HOST}:{port}", APP),
    )
    with launched(command, tmp_path, http_port=port, workers=2) as server:
        registrations = server.registrations()
        assert {r.ppid for r in registrations} == {server.process.pid}
        assert all(r.app == APP for r in registrations)
        result = cli("doctor", "--pid", str(server.process.pid), env=_runtime(server))
        assert result.returncode == 0, result.stderr
        for registration in registrations:
            assert str(registration.pid) in result.stdout
        for _ in range(4):  # gunicorn spreads requests: every worker's agent sees its own
            server.get("/block")
        assert_a_blocked_loop_is_named(server)
        assert_stops_cleanly(server)


def test_uvicorn_workers_each_get_an_agent(tmp_path: Path) -> None:
    port = free_port()
    command = inspector_run("--", tool("uvicorn"), APP, "--port", str(port), "--workers", "2")
    with launched(command, tmp_path, http_port=port, workers=2) as server:
        assert len({r.pid for r in server.registrations()}) == 2
        assert_requests_are_seen(server)
        assert_a_blocked_loop_is_named(server)
        assert_stops_cleanly(server)


@pytest.mark.parametrize(
    "module", ["tests.apps.launch_app", "tests.apps.launch_embedded"], ids=["run", "serve"]
)
def test_a_program_that_starts_uvicorn_itself(tmp_path: Path, module: str) -> None:
    port = free_port()
    command = inspector_run("--", sys.executable, "-m", module, str(port))
    with launched(command, tmp_path, http_port=port) as server:
        [registration] = server.registrations()
        assert registration.pid == server.process.pid
        assert registration.app is not None and registration.app.endswith(":app")
        assert_requests_are_seen(server)
        if module.endswith("embedded"):
            names = {task.name for task in _tasks(server)}
            assert "housekeeping" in names  # the program's own work is seen too
        assert_a_blocked_loop_is_named(server)
        assert_stops_cleanly(server)


def test_one_line_in_code_keeps_the_app_a_fastapi_app_for_fastapi_run(tmp_path: Path) -> None:
    port = free_port()
    command = [tool("fastapi"), "run", "tests/apps/one_line_app.py", "--port", str(port)]
    settings = {"INSPECTOR_INSPECT_PORT": "0"}
    with launched(command, tmp_path, http_port=port, env=settings) as server:
        [registration] = server.registrations()
        assert registration.pid == server.process.pid
        assert_a_blocked_loop_is_named(server, "tests/apps/one_line_app.py")
        assert_stops_cleanly(server)


def test_one_line_in_code_and_inspector_run_make_one_agent_with_the_runs_options(
    tmp_path: Path,
) -> None:
    port = free_port()
    command = inspector_run("--read-only", "--", tool("uvicorn"), "tests.apps.one_line_app:app")
    command += ["--port", str(port)]
    settings = {"INSPECTOR_INSPECT_PORT": "0"}
    with launched(command, tmp_path, http_port=port, env=settings) as server:
        [registration] = server.registrations()
        with TermuiClient(registration.host, registration.port) as client:
            assert client.command("inspector-hello").payload.read_only is True


def test_signals_and_exit_status_are_the_commands(tmp_path: Path) -> None:
    port = free_port()
    command = inspector_run("--", tool("uvicorn"), APP, "--port", str(port))
    with launched(command, tmp_path, http_port=port) as server:
        server.process.send_signal(signal.SIGINT)
        assert server.wait_exit(10) == 0  # uvicorn's own clean exit on Ctrl-C
    failing = subprocess.run(
        inspector_run("--", sys.executable, "-c", "import sys; sys.exit(7)"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert failing.returncode == 7


def test_stdin_and_stdout_pass_through(tmp_path: Path) -> None:
    echo = "import sys; sys.stdout.write(sys.stdin.read().upper())"
    result = subprocess.run(
        inspector_run("--", sys.executable, "-c", echo),
        input="piped",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert result.stdout == "PIPED"


def test_an_unknown_command_is_one_line_and_127() -> None:
    result = cli("run", "--", "no-such-command-here")
    assert result.returncode == 127
    assert result.stderr.strip() == "inspector: command not found: no-such-command-here"


def test_server_arguments_before_the_separator_are_refused() -> None:
    result = cli("run", "--port", "9000", "--", "uvicorn", APP)
    assert result.returncode == 2
    assert "after the command" in result.stderr and "Traceback" not in result.stderr


def test_the_environment_switches_the_agent_off_and_sets_its_options(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "inspector", "run", "--", tool("uvicorn"), APP]
    command += ["--port", str(port)]
    switched_off = {"INSPECTOR_ENABLED": "0"}
    with launched(command, tmp_path, http_port=port, workers=0, env=switched_off) as off:
        assert off.registrations() == []
        assert "inspector" not in off.output()
    port = free_port()
    settings = {"INSPECTOR_READ_ONLY": "1", "INSPECTOR_INSPECT_PORT": "0"}
    command[-1] = str(port)
    with launched(command, tmp_path, http_port=port, env=settings) as server:
        [registration] = server.registrations()
        with TermuiClient(registration.host, registration.port) as client:
            assert client.command("inspector-hello").payload.read_only is True


def test_a_bad_variable_is_one_line_naming_it() -> None:
    result = cli("run", "--", "uvicorn", APP, env={"INSPECTOR_INSPECT_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stderr.strip() == "inspector: INSPECTOR_INSPECT_PORT: not a port number: 'eighty'"
    assert cli("ps", env={"INSPECTOR_INSPECT_PORT": "eighty"}).returncode == 0


def test_the_interpreters_own_sitecustomize_still_runs(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import os\nos.environ['SITE_RAN'] = 'yes'\n")
    show = "import os; print(os.environ.get('SITE_RAN'))"
    result = subprocess.run(
        inspector_run("--", sys.executable, "-c", show),
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.stdout.strip() == "yes"


def test_short_form_takes_every_uvicorn_option_and_uvicorn_variables(tmp_path: Path) -> None:
    port = free_port()
    env_file = tmp_path / "app.env"
    env_file.write_text("SHOP_MODE=staging\n")
    command = inspector_run(APP, "--no-access-log", "--env-file", str(env_file))
    with launched(command, tmp_path, http_port=port, env={"UVICORN_PORT": str(port)}) as server:
        assert_requests_are_seen(server)
        assert '"GET / HTTP/1.1"' not in server.output()


def test_short_form_reload(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "tests/apps/launch_app.py", tmp_path / "reload_me.py")
    port = free_port()
    command = inspector_run("reload_me:app", "--reload", "--port", str(port))
    command += ["--reload-dir", str(tmp_path), "--app-dir", str(tmp_path)]
    with launched(command, tmp_path, http_port=port, cwd=tmp_path, ready_timeout=40) as server:
        [first] = server.registrations()
        time.sleep(0.5)
        (tmp_path / "reload_me.py").write_text(
            (tmp_path / "reload_me.py").read_text() + "\n# changed\n"
        )
        wait_for(
            lambda: [r.pid for r in server.registrations()] not in ([], [first.pid]), timeout=30
        )


def _tasks(server: RunningServer) -> Sequence[object]:
    [registration] = server.registrations()
    with TermuiClient(registration.host, registration.port, timeout=10) as client:
        payload = client.command("inspector-snapshot").payload
    assert isinstance(payload, Snapshot)
    return payload.tasks


def _runtime(server: RunningServer) -> dict[str, str]:
    from inspector.registration import ENV_RUNTIME_DIR

    return {ENV_RUNTIME_DIR: str(server.runtime_dir)}


def test_help_shows_every_variable_and_uvicorns_options() -> None:
    from inspector.agent.settings import ENV_ENABLED, SETTINGS

    result = cli("run", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    for setting in SETTINGS:
        assert setting.variable in result.stdout, setting.variable
    assert ENV_ENABLED in result.stdout
    assert "--forwarded-allow-ips" in result.stdout and "--reload" in result.stdout
    assert "inspector run -- fastapi run main.py" in result.stdout


def test_a_python_without_the_inspector_warns_only_if_it_serves(tmp_path: Path) -> None:
    """A command's other interpreters (here one without the inspector installed) stay silent,
    unless they import uvicorn: then they say once that this server runs without the agent."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")],
        check=True,
        timeout=60,
    )
    bare = str(tmp_path / "bare" / "bin" / "python")
    quiet = subprocess.run(
        inspector_run("--", bare, "-c", "print('migrated')"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert quiet.stdout == "migrated\n"
    assert "cannot load" not in quiet.stderr
    serving = subprocess.run(
        inspector_run("--", bare, "-c", "import uvicorn"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert serving.stderr.count("cannot load the inspector agent") == 1

"""`inspector inject`: the launcher it sends, run in a real server the way `sys.remote_exec`
runs it, and a real 3.14 run where the machine has one (the debugger way is tested in
tests/e2e/test_inject_debugger.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.client import discovery
from inspector.client.aiomonitor_source import AiomonitorSource
from inspector.commands.inject import bootstrap_script
from tests.fleet.conftest import APPS, REPO, VENV_BIN, Server, wait_until

UVICORN = str(VENV_BIN / "uvicorn")


def _python_314() -> str | None:
    """A Python 3.14+ interpreter on this machine, if any."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(14, 20)]
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [
            str(path / "bin" / "python")
            for path in sorted(pyenv.iterdir())
            if path.name.startswith("3.") and int(path.name.split(".")[1]) >= 14
        ]
    return next((c for c in candidates if c and os.path.exists(c)), None)


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="checks the refusal on Python < 3.14")
def test_remote_exec_before_314_refuses_in_one_line() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            done = subprocess.run(
                [str(VENV_BIN / "inspector"), "inject", "--method", "remote-exec", str(child.pid)],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=REPO,
            )
        finally:
            child.kill()
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Python 3.14" in lines[0] and "sys.remote_exec" in lines[0]


@pytest.mark.e2e
def test_bootstrap_starts_an_agent_from_between_two_bytecodes(
    servers: list[Server], runtime_dir: Path, tmp_path: Path
) -> None:
    """The script sys.remote_exec would run, run the same way: on the main thread, between
    bytecodes (a signal handler), in a uvicorn that has no agent."""
    result = tmp_path / "result.json"
    script = tmp_path / "bootstrap.py"
    script.write_text(bootstrap_script(result, "127.0.0.1", 0))
    server = Server(
        [UVICORN, "--app-dir", str(APPS), "fleet_inject_app:app", "--port", "0"],
        env={
            **os.environ,
            "INSPECTOR_TEST_BOOTSTRAP": str(script),
            "INSPECTOR_RUNTIME_DIR": str(runtime_dir),
        },
    )
    servers.append(server)
    server.wait_for_output("Uvicorn running on")
    assert discovery.agent_address_for_pid(server.pid) is None

    os.kill(server.pid, signal.SIGUSR1)

    answer = wait_until(lambda: result.exists() and json.loads(result.read_text()), timeout=10)
    assert answer["ok"], answer
    assert answer["pid"] == server.pid
    address = wait_until(lambda: discovery.agent_address_for_pid(server.pid), timeout=10)
    assert address == ("127.0.0.1", answer["port"])

    import asyncio

    async def tasks_of_the_server() -> list[str]:
        source = AiomonitorSource(*address)
        try:
            hello = await source.connect()
            assert hello.process.pid == server.pid
            return [t.coro for t in (await source.snapshot()).tasks]
        finally:
            await source.close()

    assert any(
        "serve" in coro or "main_loop" in coro for coro in asyncio.run(tasks_of_the_server())
    )


@pytest.mark.e2e
def test_inject_into_a_real_server_on_python_314(servers: list[Server], tmp_path: Path) -> None:
    python = _python_314()
    if python is None:
        pytest.skip("no Python 3.14 interpreter on this machine: sys.remote_exec is unavailable")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-e", str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if pip.returncode != 0:
        pytest.skip(f"cannot install the package for Python 3.14: {pip.stderr[-300:]}")
    server = Server(
        [str(venv / "bin" / "uvicorn"), "--app-dir", str(APPS), "fleet_app:app", "--port", "0"]
    )
    servers.append(server)
    server.wait_for_output("Uvicorn running on")
    done = subprocess.run(
        [str(venv / "bin" / "inspector"), "inject", str(server.pid)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 and "not allowed to attach" in done.stderr:
        pytest.skip(f"no ptrace rights here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert "agent started" in done.stdout

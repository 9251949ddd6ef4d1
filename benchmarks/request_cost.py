"""The agent's cost per request, counted in machine instructions rather than timed.

wrk's requests per second move by a few percent from run to run on a shared machine, more than
the change one edit to the request path makes. Valgrind counts instructions exactly, and its
cache simulation counts the first-level cache misses that make new code on a hot path cost more
than its instructions. Repeated runs of the same code on an otherwise idle machine gave the same
counts to within 0.1 %; one run made while the test suite ran beside it was off by about 10 % of
the agent's share, so run it alone.

Each configuration serves the bench app's endpoints in-process (no sockets: what is counted is
the ASGI app and whatever the agent adds to it) under `valgrind --tool=cachegrind`, once with
no measured request and once with `REQUESTS` of them, after the same warm-up; the difference,
divided by `REQUESTS`, is the cost of one request.

    python -m benchmarks --only cost          # needs valgrind (apt-get install -y valgrind)
    python -m benchmarks.request_cost serve lifecycle hello 100   # one run, no valgrind
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
REQUESTS: Final = 2000
WARMUP: Final = 300
MODES: Final = {
    "plain": "the app alone",
    "passthrough": "request middleware, no agent running",
    "lifecycle": "lifecycle probes, every request recorded in full",
    "listed": "lifecycle probes, above the detail rate (most requests listed only)",
}
"""What wraps the app. `--no-lifecycle` serves the app alone: its row is "plain"."""

ORDER_BODY: Final = (
    b'{"customer_id": 42, "currency": "EUR", "note": "leave at the door", "lines": ['
    b'{"sku": "sku-1", "quantity": 2, "price_cents": 1250},'
    b'{"sku": "sku-7", "quantity": 1, "price_cents": 4990},'
    b'{"sku": "sku-9", "quantity": 3, "price_cents": 720}]}'
)
ENDPOINTS: Final = {
    "hello": ("GET", "/", b""),
    "realistic": ("POST", "/orders", ORDER_BODY),
}

Message = MutableMapping[str, Any]


@dataclass(frozen=True)
class Counts:
    instructions: int
    l1_misses: int
    """Instruction plus data first-level cache misses."""


@dataclass(frozen=True)
class CostRow:
    mode: str
    endpoint: str
    instructions: float
    """Per request."""
    l1_misses: float
    instructions_ratio: float
    """Against "plain" on the same endpoint."""
    l1_misses_ratio: float


# --- the served side (runs under valgrind) -------------------------------------------------------


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = [(b"host", b"bench")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def _app_for(mode: str, loop: asyncio.AbstractEventLoop) -> Any:
    from benchmarks.apps.bench_app import app

    if mode == "plain":
        return app
    from inspector.agent.probe import AgentConfig, AgentContext
    from inspector.agent.probes import default_probes, wrap_asgi

    if mode in ("lifecycle", "listed"):
        # Under valgrind a few hundred requests a second are served: "lifecycle" asks for every
        # one in full, "listed" for one a second, so that past the first second almost none is.
        config = AgentConfig(request_detail_rate=None if mode == "lifecycle" else 1)
        context = AgentContext(loop=loop, loop_thread_id=threading.get_ident(), config=config)
        for probe in default_probes(config):
            probe.install(context)  # on the loop thread, as the agent does
    return wrap_asgi(app)


async def _serve(mode: str, endpoint: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    app = _app_for(mode, loop)
    method, path, body = ENDPOINTS[endpoint]

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise SystemExit(f"{method} {path} answered {message['status']}")

    for _ in range(WARMUP + count):
        # uvicorn runs each request in a task of its own
        await loop.create_task(app(_scope(method, path, body), receive, send))


def serve(mode: str, endpoint: str, count: int) -> None:
    asyncio.run(_serve(mode, endpoint, count))


# --- the measuring side --------------------------------------------------------------------------


def valgrind_missing() -> str | None:
    """Why this section cannot run here, or None."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install -y valgrind)"
    return None


_SUMMARY = re.compile(r"^==\d+== (I\s+refs|I1\s+misses|D1\s+misses):\s+([\d,]+)", re.MULTILINE)


def count(mode: str, endpoint: str, requests: int) -> Counts:
    """Instructions and L1 misses of one whole run of the served side."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    argv = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=yes",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.request_cost",
        "serve",
        mode,
        endpoint,
        str(requests),
    ]
    completed = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    found = {
        name.split()[0]: int(value.replace(",", ""))
        for name, value in _SUMMARY.findall(completed.stderr)
    }
    if completed.returncode != 0 or len(found) != 3:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{mode} {endpoint}: valgrind run failed: {tail}")
    return Counts(instructions=found["I"], l1_misses=found["I1"] + found["D1"])


def run_request_cost(log: Callable[[str], None]) -> list[CostRow]:
    """Every mode on every endpoint, the valgrind runs spread over the CPUs."""
    runs = [(mode, endpoint, n) for endpoint in ENDPOINTS for mode in MODES for n in (0, REQUESTS)]
    log(f"  {len(runs)} valgrind runs of about 20 s each, {os.cpu_count() or 1} at a time")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counted = dict(zip(runs, pool.map(lambda run: count(*run), runs), strict=True))
    rows: list[CostRow] = []
    for endpoint in ENDPOINTS:
        per_request: dict[str, tuple[float, float]] = {}
        for mode in MODES:
            base, loaded = counted[(mode, endpoint, 0)], counted[(mode, endpoint, REQUESTS)]
            per_request[mode] = (
                (loaded.instructions - base.instructions) / REQUESTS,
                (loaded.l1_misses - base.l1_misses) / REQUESTS,
            )
        plain_instructions, plain_misses = per_request["plain"]
        for mode, (instructions, misses) in per_request.items():
            rows.append(
                CostRow(
                    mode=mode,
                    endpoint=endpoint,
                    instructions=instructions,
                    l1_misses=misses,
                    instructions_ratio=instructions / plain_instructions,
                    l1_misses_ratio=misses / plain_misses,
                )
            )
    return rows


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "serve" and argv[1] in MODES and argv[2] in ENDPOINTS:
        serve(argv[1], argv[2], int(argv[3]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

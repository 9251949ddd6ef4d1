"""Running wrk and reading its numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.servers import HOST, LOAD_CPU, pinned

SCRIPTS: Final = Path(__file__).resolve().parent / "wrk"
INSTALL_HINT: Final = "wrk not found: apt-get update && apt-get install -y wrk"
CONNECTIONS: Final = 50


def wrk_missing() -> str | None:
    return None if shutil.which("wrk") else INSTALL_HINT


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    path: str
    script: str | None = None


HELLO: Final = Endpoint("hello", "hello world (GET /)", "/")
REALISTIC: Final = Endpoint(
    "realistic", "JSON body + awaited DB (POST /orders)", "/orders", "post_order.lua"
)
MIXED: Final = Endpoint("mixed", "GET / and GET /bg (a background task)", "/", "mixed.lua")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS: Final = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str) -> WrkResult:
    requests = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (requests and rps and p50 and p99):
        raise ValueError("wrk printed no results:\n" + output[-500:])
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return WrkResult(
        requests=int(requests.group(1)),
        seconds=_ms(requests.group(2) + requests.group(3)) / 1000,
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        errors=errors,
    )


def run_wrk(
    port: int, endpoint: Endpoint, seconds: float, connections: int = CONNECTIONS
) -> WrkResult:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    if endpoint.script:
        argv += ["-s", str(SCRIPTS / endpoint.script)]
    argv.append(f"http://{HOST}:{port}{endpoint.path}")
    out = subprocess.run(
        pinned(argv, LOAD_CPU), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()[-300:]}")
    return parse(out.stdout)

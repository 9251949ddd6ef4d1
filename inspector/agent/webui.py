"""aiomonitor's web UI, only when asked for, and guarded when it is on.

Stock aiomonitor always serves its web UI, and anyone who reaches it can cancel any task
(``DELETE /api/task``), with no check of the ``Host`` header, so a web page the operator visits
can reach it through DNS rebinding. The agent serves it only with `AgentConfig.webui_port`, on
the agent's own host (loopback unless `allow_remote`), answers only requests addressed to that
host and port by name, and refuses every action when the agent is read-only.
"""

from __future__ import annotations

from typing import Any, Final

from inspector.addresses import is_loopback

ACTIONS: Final = frozenset({"DELETE", "PUT", "PATCH"})
"""Methods that act on the server (the task list pages read with POST)."""
LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The ``Host`` header values a request to the web UI may carry."""
    names = {f"[{host}]" if ":" in host else host}
    if is_loopback(host):
        names.update(LOOPBACK_NAMES)
    return frozenset(f"{name}:{port}".lower() for name in names)


def refusal(
    method: str, host_header: str | None, allowed: frozenset[str], read_only: bool
) -> str | None:
    """Why a request must be refused, or None."""
    if host_header is None or host_header.lower() not in allowed:
        return "unexpected Host header"
    if read_only and method.upper() in ACTIONS:
        return "the agent is read-only"
    return None


async def start_webui(monitor: Any, host: str, port: int, read_only: bool) -> tuple[Any, int]:
    """Serve aiomonitor's web UI on host:port; returns the aiohttp runner (`cleanup()` stops
    it) and the port it listens on (chosen by the OS for port 0).

    Raises OSError when the port is taken."""
    from aiohttp import web
    from aiomonitor.webui.app import init_webui

    app = await init_webui(monitor)
    runner = web.AppRunner(app)
    holder: dict[str, frozenset[str]] = {}

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> Any:
        why = refusal(request.method, request.headers.get("Host"), holder["allowed"], read_only)
        if why is not None:
            status = 421 if why.startswith("unexpected") else 403
            return web.json_response({"msg": f"refused: {why}"}, status=status)
        return await handler(request)

    app.middlewares.append(guard)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    holder["allowed"] = allowed_hosts(host, bound)
    return runner, bound

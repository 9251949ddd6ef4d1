"""Provoke the stdlib's own reports of unseen errors, with or without the exception probes.

    python -m tests.apps.probes_stderr on|off

Prints to stderr exactly what Python and asyncio print (a task exception never retrieved, a
coroutine never awaited, an error logged with no logging configured), and on stdout one JSON
line with the events the probes recorded. Run it both ways and compare the stderr.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import threading

from inspector.agent.probe import AgentConfig, AgentContext
from inspector.agent.probes import default_probes


async def fails() -> None:
    raise ValueError("nobody awaited me")


async def forgotten() -> None:
    pass


def log_an_error() -> None:
    try:
        raise KeyError("logged")
    except KeyError:
        logging.getLogger("probes.stderr").exception("an error with its traceback")


async def main(with_probes: bool) -> list[dict[str, object]]:
    loop = asyncio.get_running_loop()
    probes = []
    context = None
    if with_probes:
        config = AgentConfig()
        context = AgentContext(loop=loop, loop_thread_id=threading.get_ident(), config=config)
        probes = default_probes(config)
        for probe in probes:
            probe.install(context)
    task = asyncio.ensure_future(fails())
    await asyncio.sleep(0.01)
    del task
    gc.collect()
    forgotten()  # a coroutine never awaited
    gc.collect()
    log_an_error()
    events: list[dict[str, object]] = []
    if context is not None:
        from inspector.agent.probe import CollectOptions

        for probe in probes:
            for event in probe.collect(context, CollectOptions()).get("exceptions", ()):
                location = event.location
                events.append(
                    {
                        "kind": event.kind,
                        "type": event.error.type,
                        "line": location.line if location else None,
                        "function": location.function if location else None,
                    }
                )
        for probe in reversed(probes):
            probe.close()
    return events


if __name__ == "__main__":
    recorded = asyncio.run(main(sys.argv[1] == "on"))
    sys.stderr.flush()
    print(json.dumps(recorded))

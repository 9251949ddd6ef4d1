"""Exceptions handled in every common way, some swallowed, for the swallowed-exception tracer.

    python -m tests.apps.probes_swallowed      (Python >= 3.12)

Runs each handler once with the tracer installed on a running loop and prints one JSON line:
the `except` lines reported as swallowing, and the names of the functions that ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from contextlib import suppress

from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions
from inspector.agent.probes.exceptions import ExceptionLog
from inspector.agent.probes.swallowed import SwallowedExceptionsProbe

logger = logging.getLogger("probes.swallowed")
logger.addHandler(logging.NullHandler())
logger.propagate = False


def swallows_with_pass() -> None:
    try:
        int("not a number")
    except ValueError:  # SWALLOWED pass
        pass


def swallows_with_default() -> int:
    try:
        return {}["missing"]  # type: ignore[no-any-return]
    except (KeyError, IndexError):  # SWALLOWED default
        return 0


def second_clause_swallows() -> None:
    try:
        raise ZeroDivisionError("second")
    except ValueError:
        raise
    except ArithmeticError:  # SWALLOWED second clause
        pass


def logs_it() -> None:
    try:
        int("x")
    except ValueError:
        logger.exception("bad number")


def reraises() -> None:
    try:
        int("x")
    except ValueError:
        raise


def wraps_it() -> None:
    try:
        int("x")
    except ValueError as error:
        raise RuntimeError("wrapped") from error


def uses_the_error() -> str:
    try:
        int("x")
    except ValueError as error:
        return str(error)
    return ""


def suppressed() -> None:
    with contextlib.suppress(ValueError):  # SWALLOWED suppress
        int("x")


def suppressed_by_name() -> None:
    with suppress(KeyError, LookupError):  # SWALLOWED suppress by name
        {}["missing"]  # noqa: B018


def suppress_lets_others_through() -> None:
    with suppress(KeyError):
        int("x")


def other_context_manager() -> None:
    with open(__file__) as source:
        source.read(1)
        int("x")


def suppress_of_another_kind() -> None:
    with nullcontext_named_suppress(ValueError):
        int("x")


class nullcontext_named_suppress(contextlib.AbstractContextManager[None]):  # noqa: N801
    """Not contextlib.suppress, though its name says so: the tracer does not judge it."""

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self.exceptions = exceptions

    def __exit__(self, *details: object) -> bool:
        return True


def unmatched() -> None:
    try:
        int("x")
    except KeyError:
        pass


async def swallows_cancellation() -> None:
    task = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:  # SWALLOWED cancellation
        pass


async def main() -> dict[str, object]:
    loop = asyncio.get_running_loop()
    config = AgentConfig(trace_exceptions=True)
    context = AgentContext(loop=loop, loop_thread_id=threading.get_ident(), config=config)
    log = ExceptionLog(50)
    probe = SwallowedExceptionsProbe(config, log)
    probe.install(context)
    ran = []
    try:
        for function in (
            swallows_with_pass,
            swallows_with_default,
            second_clause_swallows,
            logs_it,
            uses_the_error,
            suppressed,
            suppressed_by_name,
        ):
            function()
            ran.append(function.__name__)
        for raising in (
            reraises,
            wraps_it,
            unmatched,
            suppress_lets_others_through,
            other_context_manager,
        ):
            try:
                raising()
            except Exception as error:  # uses the error: not swallowed
                ran.append(f"{raising.__name__}: {type(error).__name__}")
        suppress_of_another_kind()
        ran.append("suppress_of_another_kind")
        await swallows_cancellation()
        ran.append("swallows_cancellation")
        probe.collect(context, CollectOptions())
    finally:
        probe.close()
    events = [
        {
            "line": event.location.line if event.location else None,
            "code": event.location.code if event.location else None,
            "function": event.location.function if event.location else None,
            "type": event.error.type,
            "count": event.count,
        }
        for event in log.events()
    ]
    return {"events": events, "ran": ran, "errors": list(context.health((), 0).recent_errors)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))

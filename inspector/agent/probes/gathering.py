"""The exceptions `asyncio.gather` hides: those of children failing after gather already ended.

Without `return_exceptions`, gather raises the first child's exception and lets the others run
on. When one of them fails later, gather's own callback calls `exception()` on it, only to keep
asyncio from logging "Task exception was never retrieved": the error is marked seen and nobody
ever saw it.

gather builds its result future from `asyncio.tasks._GatheringFuture`, looked up when it runs, so
while installed that name is a subclass whose constructor watches the children: this reaches
every gather, also through a `from asyncio import gather` bound before the agent started. Each
child gets a done callback, which runs after gather's own; it reports the child's exception when
the gather had already ended otherwise (raised another exception, or was cancelled). A gather
that returned the exception among its results (`return_exceptions=True`) ended with a result, and
is left alone. The children are also marked in the task table, so the scan for unretrieved task
exceptions leaves them to gather (with `return_exceptions`, gather reads every child's exception,
but only once the last child has ended).

Cost: one `add_done_callback` per child per gather call, and the callback when a child ends.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspector.agent.probes.tasklinks import RequestTaskTable

OnHidden = Callable[["asyncio.Future[Any]", BaseException], None]
_NAME = "_GatheringFuture"


class GatherWatch:
    """Watches the children of every `asyncio.gather` for exceptions it marks retrieved."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_hidden: OnHidden,
        tasks: RequestTaskTable | None,
        record_error: Callable[[str], None],
    ) -> None:
        self.loop = loop
        """Only gathers on this loop are watched: another agent may watch another loop."""
        self._on_hidden = on_hidden
        self._tasks = tasks
        self._record_error = record_error
        self._original: Any = None
        self._watched: Any = None
        self.active = False

    def install(self) -> None:
        original = getattr(asyncio.tasks, _NAME, None)
        if not isinstance(original, type):
            self._record_error("gather: asyncio.tasks has no _GatheringFuture to watch")
            return
        watch = self

        class WatchedGather(original):  # type: ignore[valid-type, misc]
            __slots__ = ()

            def __init__(self, children: list[Any], *args: Any, **kwargs: Any) -> None:
                super().__init__(children, *args, **kwargs)
                if watch.active and self.get_loop() is watch.loop:
                    try:
                        watch.watch(self, children)
                    except Exception as error:  # the gather itself is untouched
                        watch._record_error(f"gather: {error!r}")

        WatchedGather.__name__ = WatchedGather.__qualname__ = _NAME
        WatchedGather.__module__ = original.__module__
        self._original, self._watched = original, WatchedGather
        self.active = True
        setattr(asyncio.tasks, _NAME, WatchedGather)

    def close(self) -> None:
        self.active = False
        if self._watched is not None and getattr(asyncio.tasks, _NAME, None) is self._watched:
            setattr(asyncio.tasks, _NAME, self._original)
        self._watched = None

    def watch(self, outer: asyncio.Future[Any], children: list[Any]) -> None:
        """Mark the children of `outer` as gather's, and watch how they end."""
        tasks = self._tasks
        # Held strongly, as gather's own callback holds it: once that callback has run, nothing
        # else may be left holding the gathering future.
        callback = functools.partial(self._child_done, outer)
        for child in children:
            if tasks is not None:
                tasks.mark_gathered(child)
            child.add_done_callback(callback)

    def _child_done(self, outer: asyncio.Future[Any], child: asyncio.Future[Any]) -> None:
        """On the loop, after gather's own callback for `child` ran."""
        try:
            if not self.active or child.cancelled():
                return
            exc = getattr(child, "_exception", None)  # read, not retrieved
            if not isinstance(exc, BaseException) or not outer.done():
                return  # succeeded, or gather has yet to hand this exception to its awaiter
            if not outer.cancelled():
                raised = getattr(outer, "_exception", None)
                if raised is None or raised is exc:
                    return  # returned among the results, or the one gather raised
            self._on_hidden(child, exc)
        except Exception as error:
            self._record_error(f"gather: child callback: {error!r}")

"""The exceptions `asyncio.gather` hides: those of children failing after gather already raised.

Without `return_exceptions`, gather raises the first child's exception and lets the others run
on. When one of them fails later, gather's own callback calls `exception()` on it, only to keep
asyncio from logging "Task exception was never retrieved": the error is marked seen and nobody
ever saw it. While installed, `asyncio.gather` is wrapped: the original builds the gathering
future, then each child gets a done callback that reports an exception raised after the gather
had finished with another outcome. The children are also marked in the task table, so the scan
for unretrieved task exceptions leaves them to gather (with `return_exceptions`, gather reads
every child's exception, but only once the last child has ended).

Cost: one `add_done_callback` per child per gather call, and the callback when a child ends.
A module that bound `gather` itself (`from asyncio import gather`) before the agent started keeps
the original and is not watched.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspector.agent.probes.tasklinks import RequestTaskTable

OnHidden = Callable[["asyncio.Future[Any]", BaseException], None]
_MODULES = (asyncio, asyncio.tasks)


class GatherWatch:
    """Wraps `asyncio.gather` to report the exceptions it marks retrieved unseen."""

    def __init__(
        self,
        on_hidden: OnHidden,
        tasks: RequestTaskTable | None,
        record_error: Callable[[str], None],
    ) -> None:
        self._on_hidden = on_hidden
        self._tasks = tasks
        self._record_error = record_error
        self._original: Any = None
        self._wrapper: Any = None
        self.active = False

    def install(self) -> None:
        original = asyncio.gather
        watch = self

        @functools.wraps(original)
        def gather(*aws: Any, return_exceptions: bool = False) -> asyncio.Future[Any]:
            outer = original(*aws, return_exceptions=return_exceptions)
            if watch.active:
                try:
                    watch.watch(outer, return_exceptions)
                except Exception as error:  # the gather itself is untouched
                    watch._record_error(f"gather: {error!r}")
            return outer

        self._original, self._wrapper = original, gather
        self.active = True
        for module in _MODULES:
            if module.gather is original:
                module.gather = gather

    def close(self) -> None:
        self.active = False
        for module in _MODULES:
            if self._wrapper is not None and module.gather is self._wrapper:
                module.gather = self._original
        self._wrapper = None

    def watch(self, outer: asyncio.Future[Any], return_exceptions: bool) -> None:
        """Mark the children of `outer` and, without return_exceptions, watch how they end."""
        children = getattr(outer, "_children", None)
        if not isinstance(children, list):
            return  # gather() of nothing: a plain future
        tasks = self._tasks
        if tasks is not None:
            for child in children:
                tasks.mark_gathered(child)
        if return_exceptions:
            return
        # Held strongly, as gather's own callback holds it: once that callback has run, nothing
        # else may be left holding the gathering future.
        callback = functools.partial(self._child_done, outer)
        for child in children:
            child.add_done_callback(callback)

    def _child_done(self, outer: asyncio.Future[Any], child: asyncio.Future[Any]) -> None:
        """On the loop, after gather's own callback for `child` ran."""
        try:
            if child.cancelled():
                return
            exc = getattr(child, "_exception", None)  # read, not retrieved
            if not isinstance(exc, BaseException) or not outer.done():
                return  # succeeded, or it is the exception gather raises
            if not outer.cancelled() and getattr(outer, "_exception", None) is exc:
                return  # the one gather raised: its awaiter got it
            self._on_hidden(child, exc)
        except Exception as error:
            self._record_error(f"gather: child callback: {error!r}")

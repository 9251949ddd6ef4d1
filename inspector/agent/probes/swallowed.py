"""Opt-in (Python >= 3.12): exceptions caught in application code and silently dropped.

`sys.monitoring` reports EXCEPTION_HANDLED each time control jumps to an exception handler. The
event is global (CPython cannot enable it per code object), so the callback first drops
everything outside application code with one dict lookup per code object.

For a handler in application code, the `try` statement is found in the source (parsed once per
file) and its `except` clauses are matched against the exception in order, resolving the clause
types from the frame's globals and builtins (clauses naming a local are not judged). The matched
clause counts as swallowing when its body neither raises, nor calls a logging-like function
(`logger.*`, `logging.*`, `print`, `traceback.print_exc`, `warnings.warn`,
`sentry_sdk.capture_exception`, ...), nor uses the exception it bound (`except E as e: return
str(e)` surfaces it). `with` statements (`contextlib.suppress`) and `async for` loops, which also
handle exceptions, are not `except` clauses and are never reported.

The event names the `except` line as its location. Events fold by location, so a hot handler
costs a dictionary update after its first report.
"""

from __future__ import annotations

import ast
import dis
import linecache
import sys
import types
from collections.abc import Mapping
from typing import Any, Final

from inspector.agent.frames import frame_at
from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions
from inspector.agent.probes.current import current_request
from inspector.agent.probes.exceptions import ExceptionLog, exception_info
from inspector.agent.probes.tracker import request_now
from inspector.frame_kinds import is_application
from inspector.model import ExceptionInfo, Frame

TOOL_NAME: Final = "uvicorn-inspector"
_TOOL_IDS: Final = (4, 3, 5, 2, 1, 0)
"""sys.monitoring tool ids to try, the unnamed ones first (0 debugger, 1 coverage, 2 profiler)."""
_CACHE_LIMIT: Final = 20_000
_SOURCE_CACHE_LIMIT: Final = 256
_LOGGING_CALLS: Final = frozenset(
    {
        "debug",
        "info",
        "warning",
        "warn",
        "error",
        "exception",
        "critical",
        "fatal",
        "log",
        "print",
        "print_exc",
        "print_exception",
        "format_exc",
        "capture_exception",
        "capture_message",
        "showwarning",
    }
)
_UNKNOWN: Final = object()


class Clause:
    """One `except` clause of a `try`, judged once from the source."""

    __slots__ = ("type_expr", "line", "swallows", "location", "last_info")

    def __init__(self, type_expr: ast.expr | None, line: int, swallows: bool) -> None:
        self.type_expr = type_expr
        self.line = line
        self.swallows = swallows
        self.location: Frame | None = None
        self.last_info: ExceptionInfo | None = None


class HandlerSite:
    """The `except` clauses control may reach from one handler offset of one code object."""

    __slots__ = ("clauses",)

    def __init__(self, clauses: list[Clause]) -> None:
        self.clauses = clauses

    def matching_clause(self, exc: BaseException, frame: types.FrameType) -> Clause | None:
        for clause in self.clauses:
            if clause.type_expr is None:
                return clause
            resolved = _resolve(clause.type_expr, frame.f_globals, frame.f_builtins)
            if resolved is _UNKNOWN:
                return None
            try:
                if isinstance(exc, resolved):
                    return clause
            except TypeError:
                return None
        return None


def _resolve(expr: ast.expr, globals_: Mapping[str, Any], builtins: Mapping[str, Any]) -> Any:
    """The exception class(es) an `except` clause names, without running arbitrary code."""
    if isinstance(expr, ast.Name):
        if expr.id in globals_:
            return globals_[expr.id]
        return builtins.get(expr.id, _UNKNOWN)
    if isinstance(expr, ast.Attribute):
        base = _resolve(expr.value, globals_, builtins)
        if base is _UNKNOWN or not isinstance(base, (types.ModuleType, type)):
            return _UNKNOWN
        return getattr(base, expr.attr, _UNKNOWN)
    if isinstance(expr, ast.Tuple):
        items = tuple(_resolve(item, globals_, builtins) for item in expr.elts)
        return _UNKNOWN if any(item is _UNKNOWN for item in items) else items
    return _UNKNOWN


class _BodyScan(ast.NodeVisitor):
    """Does an except body re-raise, log, or use the exception it bound?"""

    def __init__(self, bound_name: str | None) -> None:
        self.bound_name = bound_name
        self.visible = False

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        return  # code in a nested function does not run here

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]
    visit_Lambda = visit_FunctionDef  # type: ignore[assignment]
    visit_ClassDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Raise(self, node: ast.Raise) -> None:
        self.visible = True

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in _LOGGING_CALLS:
            self.visible = True
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if self.bound_name is not None and node.id == self.bound_name:
            self.visible = True


def _swallows(handler: ast.ExceptHandler) -> bool:
    scan = _BodyScan(handler.name)
    for statement in handler.body:
        scan.visit(statement)
        if scan.visible:
            return False
    return True


class _SourceIndex:
    """Per file: the first `except` line of each plain `try` -> its clauses."""

    def __init__(self) -> None:
        self._files: dict[str, dict[int, list[Clause]]] = {}

    def clauses_at(self, filename: str, line: int) -> list[Clause] | None:
        index = self._files.get(filename)
        if index is None:
            index = self._index(filename)
            if len(self._files) >= _SOURCE_CACHE_LIMIT:
                self._files.clear()
            self._files[filename] = index
        return index.get(line)

    @staticmethod
    def _index(filename: str) -> dict[int, list[Clause]]:
        source = "".join(linecache.getlines(filename))
        if not source:
            return {}
        try:
            tree = ast.parse(source, filename)
        except (SyntaxError, ValueError):
            return {}
        index: dict[int, list[Clause]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and node.handlers:
                clauses = [
                    Clause(handler.type, handler.lineno, _swallows(handler))
                    for handler in node.handlers
                ]
                index[node.handlers[0].lineno] = clauses
        return index


def _handler_line(code: types.CodeType, offset: int) -> int | None:
    """The line of the first instruction after a try's PUSH_EXC_INFO at `offset`, or None."""
    found = False
    for instruction in dis.get_instructions(code):
        if not found:
            if instruction.offset == offset:
                if instruction.opname != "PUSH_EXC_INFO":
                    return None
                found = True
            continue
        positions = getattr(instruction, "positions", None)  # Python >= 3.11
        line = getattr(positions, "lineno", None)
        if isinstance(line, int):
            return line
    return None


class SwallowedExceptionsProbe:
    """Reports exceptions that application code catches and drops without a trace."""

    name = "swallowed-exceptions"

    def __init__(self, config: AgentConfig, log: ExceptionLog) -> None:
        self._config = config
        self._log = log
        self._context: AgentContext | None = None
        self._tool: int | None = None
        # Keyed by id(code) with the code object kept beside the answer: equal code objects
        # from different files compare (and hash) equal, so the objects cannot be the keys.
        self._application_code: dict[int, tuple[types.CodeType, bool]] = {}
        self._sites: dict[tuple[int, int], tuple[types.CodeType, HandlerSite | None]] = {}
        self._sources = _SourceIndex()
        self._active = False

    def install(self, context: AgentContext) -> None:
        self._context = context
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is None:
            context.record_error("swallowed exceptions: sys.monitoring needs Python >= 3.12")
            return
        for tool in _TOOL_IDS:
            if monitoring.get_tool(tool) is None:
                break
        else:
            context.record_error("swallowed exceptions: every sys.monitoring tool id is in use")
            return
        monitoring.use_tool_id(tool, TOOL_NAME)
        self._tool = tool
        self._active = True
        monitoring.register_callback(tool, monitoring.events.EXCEPTION_HANDLED, self._on_handled)
        monitoring.set_events(tool, monitoring.events.EXCEPTION_HANDLED)

    def close(self) -> None:
        self._active = False
        tool, self._tool = self._tool, None
        if tool is None:
            return
        try:
            monitoring = sys.monitoring  # type: ignore[attr-defined]
            monitoring.set_events(tool, 0)
            monitoring.register_callback(tool, monitoring.events.EXCEPTION_HANDLED, None)
            monitoring.free_tool_id(tool)
        except Exception as error:  # close must not raise
            if self._context is not None:
                self._context.record_error(f"swallowed exceptions: close: {error!r}")

    def collect(self, context: AgentContext, options: CollectOptions) -> Mapping[str, Any]:
        return {}  # the events go to the shared exception log

    # --- the callback (any thread) -------------------------------------------------------------

    def _on_handled(self, code: types.CodeType, offset: int, exc: BaseException) -> Any:
        known = self._application_code.get(id(code))
        if known is not None and known[0] is code:
            application = known[1]
        else:
            application = is_application(code.co_filename)
            if len(self._application_code) >= _CACHE_LIMIT:
                self._application_code.clear()
            self._application_code[id(code)] = (code, application)
        if not application or not self._active:
            return None
        try:
            self._judge(code, offset, exc)
        except Exception as error:
            if self._context is not None:
                self._context.record_error(f"swallowed exceptions: {error!r}")
        return None

    def _judge(self, code: types.CodeType, offset: int, exc: BaseException) -> None:
        key = (id(code), offset)
        known = self._sites.get(key)
        if known is not None and known[0] is code:
            site = known[1]
        else:
            site = self._site(code, offset)
            if len(self._sites) >= _CACHE_LIMIT:
                self._sites.clear()
            self._sites[key] = (code, site)
        if site is None:
            return
        frame = sys._getframe(2)  # the frame handling the exception (callback <- _on_handled)
        clause = site.matching_clause(exc, frame)
        if clause is None or not clause.swallows:
            return
        if clause.location is None:
            clause.location = frame_at(code, clause.line)
        info = clause.last_info
        if info is None or info.type != type(exc).__qualname__:
            info = clause.last_info = exception_info(exc)
        request = request_now()
        self._log.record(
            "exception-swallowed",
            info,
            location=clause.location,
            request=request,
            request_id=request.id if request is not None else current_request.get(),
        )

    def _site(self, code: types.CodeType, offset: int) -> HandlerSite | None:
        line = _handler_line(code, offset)
        if line is None:
            return None
        clauses = self._sources.clauses_at(code.co_filename, line)
        return HandlerSite(clauses) if clauses else None

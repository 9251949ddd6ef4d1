"""Frames as the agent reports them, and which of them are the application's own code."""

from __future__ import annotations

import asyncio
import sys
import threading
import types

from inspector.agent import frames
from inspector.agent.frames import (
    frame_at,
    frame_of,
    frames_of,
    innermost_application_frame,
    stack_of,
    thread_stack,
)
from inspector.model import Frame
from tests.agent.test_tasks import line_of


def here() -> types.FrameType:
    return sys._getframe()  # this-line


def test_frame_of_reads_file_line_function_and_source() -> None:
    frame = frame_of(here())
    assert frame == Frame(
        file=__file__,
        line=line_of("this-line", __file__),
        function="here",
        code="return sys._getframe()  # this-line",
    )


def test_frame_at_is_cached_and_tolerates_missing_source() -> None:
    code = compile("x = 1\n", "/nonexistent/generated.py", "exec")
    first = frame_at(code, 1)
    assert first == Frame(file="/nonexistent/generated.py", line=1, function="<module>", code=None)
    assert frame_at(code, 1) is first


def test_function_names_are_qualified_where_python_knows_them() -> None:
    class Holder:
        def method(self) -> types.FrameType:
            return sys._getframe()

    name = frame_of(Holder().method()).function
    if sys.version_info >= (3, 11):
        assert name.endswith("Holder.method")
    else:
        assert name == "method"


def test_stack_of_is_outermost_first_and_keeps_the_innermost() -> None:
    def inner() -> types.FrameType:
        return sys._getframe()

    def outer() -> types.FrameType:
        return inner()

    innermost = outer()
    full = stack_of(innermost)
    assert [f.function.rsplit(".", 1)[-1] for f in full[-2:]] == ["outer", "inner"]
    capped = stack_of(innermost, limit=2)
    assert capped == full[-2:]
    assert stack_of(innermost, stop_at=innermost.f_back) == full[-2:]
    assert stack_of(None) == ()


def test_frames_of_can_hide_wrapper_frames() -> None:
    def inner() -> types.FrameType:
        return sys._getframe()

    frame = inner()
    caller = frame.f_back
    assert caller is not None
    assert frames_of([caller, frame]) == (frame_of(caller), frame_of(frame))
    assert frames_of([caller, frame], frozenset({id(frame.f_code)})) == (frame_of(caller),)


def test_thread_stack_of_another_thread() -> None:
    parked, release = threading.Event(), threading.Event()

    def worker() -> None:
        parked.set()
        release.wait(5)  # worker-waits

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert parked.wait(5)
        stack = thread_stack(thread.ident or 0)
    finally:
        release.set()
        thread.join(5)
    waiting = innermost_application_frame(stack)
    assert waiting is not None
    assert waiting.function.endswith("worker")
    assert (waiting.file, waiting.line) == (__file__, line_of("worker-waits", __file__))
    assert stack[-1].file == threading.__file__  # innermost last: inside Event.wait
    assert thread_stack(-1) == ()


def test_innermost_application_frame() -> None:
    app_frame = Frame("/srv/app/main.py", 3, "handler")
    library = Frame(asyncio.__file__, 10, "sleep")
    assert innermost_application_frame([app_frame, library]) == app_frame
    assert innermost_application_frame([library]) is None
    assert innermost_application_frame([]) is None


def test_caches_are_bounded() -> None:
    for line in range(frames._CACHE_LIMIT + 10):
        frame_at(test_caches_are_bounded.__code__, line + 1)
    assert len(frames._frame_cache) <= frames._CACHE_LIMIT

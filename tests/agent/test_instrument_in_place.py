"""`instrument(app)` keeps a FastAPI app the same object, and reads INSPECTOR_* without config."""

from __future__ import annotations

import pytest

from inspector.agent.instrumented import InstrumentedApp, instrument, is_instrumented

fastapi = pytest.importorskip("fastapi")


def test_a_fastapi_app_stays_the_same_object_with_the_agent_outermost() -> None:
    app = fastapi.FastAPI()
    assert instrument(app) is app
    assert is_instrumented(app)
    assert isinstance(app.build_middleware_stack(), InstrumentedApp)
    assert instrument(app) is app  # a second call adds nothing


def test_an_app_that_has_served_already_gets_the_agent_too() -> None:
    app = fastapi.FastAPI()
    app.middleware_stack = app.build_middleware_stack()
    instrument(app)
    assert isinstance(app.middleware_stack, InstrumentedApp)


def test_a_plain_asgi_callable_is_wrapped() -> None:
    async def plain(scope: object, receive: object, send: object) -> None:
        return None

    wrapped = instrument(plain)
    assert isinstance(wrapped, InstrumentedApp) and is_instrumented(wrapped)


def test_inspector_enabled_0_leaves_the_app_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSPECTOR_ENABLED", "0")
    app = fastapi.FastAPI()
    assert instrument(app) is app and not is_instrumented(app)


def test_variables_configure_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSPECTOR_READ_ONLY", "yes")
    monkeypatch.setenv("INSPECTOR_INSPECT_PORT", "0")
    app = fastapi.FastAPI()
    instrument(app)
    stack = app.build_middleware_stack()
    assert stack._config.read_only is True and stack._config.port == 0


def test_an_unreadable_variable_leaves_the_app_untouched_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("INSPECTOR_STALL_THRESHOLD", "soon")
    app = fastapi.FastAPI()
    assert not is_instrumented(instrument(app))
    assert "INSPECTOR_STALL_THRESHOLD" in caplog.text

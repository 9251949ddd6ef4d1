"""Every agent option as an environment variable, so an image or a ConfigMap can set it.

`inspector run` takes its defaults from these variables, and a server started under
`inspector run -- COMMAND` reads the configuration they produced. The names are the options' own:
``--read-only`` is ``INSPECTOR_READ_ONLY``, ``--inspect-port`` is ``INSPECTOR_INSPECT_PORT``.
``INSPECTOR_ENABLED=0`` switches the agent off altogether: the command runs exactly as without
the inspector, so an image can carry it switched off and a deployment switch it on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the CLI reads these settings for every command: keep asyncio unloaded
    from inspector.agent.probe import AgentConfig

ENV_ENABLED: Final = "INSPECTOR_ENABLED"

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


class SettingError(ValueError):
    """An environment variable holds a value the option does not take; one line for a person."""


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {text!r} (use 1/0, true/false, yes/no or on/off)")


def parse_port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"port {value} is out of range 0-65535")
    return value


def parse_optional_port(text: str) -> int | None:
    return None if text.strip().lower() in ("", "off", "none") else parse_port(text)


def parse_positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def parse_detail_rate(text: str) -> int | None:
    """A whole number of requests a second, or "all"."""
    if text.strip().lower() == "all":
        return None
    try:
        return parse_positive_int(text)
    except ValueError:
        raise ValueError(f'not a number of requests a second or "all": {text!r}') from None


def number_in(what: str, ceiling: float, unit: str = "") -> Callable[[str], float]:
    """A parser of a number above 0 and at most `ceiling`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"not {what}: {text!r}") from None
        if not 0 < value <= ceiling:
            raise ValueError(f"must be more than 0 and at most {ceiling:g}{unit}, got {text}")
        return value

    return parse


def parse_optional_host(text: str) -> str | None:
    """An address to listen on, or nothing (""): then the agent's own host."""
    return text.strip() or None


LOG_EVENT_MODES: Final = ("off", "text", "json", "logging")
"""`AgentConfig.log_events`: off; one line of text or JSON per event on stderr; or records
handed to the app's logging setup as they are."""


def parse_log_events(text: str) -> str:
    value = text.strip().lower() or "off"
    if value in _TRUE:
        return "text"
    if value in _FALSE:
        return "off"
    if value not in LOG_EVENT_MODES:
        raise ValueError(f"not one of {', '.join(LOG_EVENT_MODES)}: {text!r}")
    return value


parse_seconds: Final = number_in("a number of seconds", 3600, " seconds")
parse_share: Final = number_in("a fraction", 1)


@dataclass(frozen=True)
class Setting:
    """One agent option: its command-line flag, its variable and the config field it sets."""

    option: str
    field: str
    parse: Callable[[str], Any]

    @property
    def variable(self) -> str:
        return "INSPECTOR_" + self.option.removeprefix("--").replace("-", "_").upper()


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("--inspect-host", "host", str),
    Setting("--inspect-port", "port", parse_port),
    Setting("--allow-remote", "allow_remote", parse_bool),
    Setting("--stall-threshold", "stall_threshold", parse_seconds),
    Setting("--read-only", "read_only", parse_bool),
    Setting("--webui-port", "webui_port", parse_optional_port),
    Setting("--lifecycle", "lifecycle", parse_bool),
    Setting("--request-detail-rate", "request_detail_rate", parse_detail_rate),
    Setting("--trace-exceptions", "trace_exceptions", parse_bool),
    Setting("--metrics-port", "metrics_port", parse_optional_port),
    Setting("--metrics-host", "metrics_host", parse_optional_host),
    Setting("--log-events", "log_events", parse_log_events),
    Setting("--otel", "otel", parse_bool),
    Setting("--agent-cpu", "cpu_share", parse_share),
)
BY_OPTION: Final = {setting.option: setting for setting in SETTINGS}


def from_environment(option: str, environ: Mapping[str, str], default: Any) -> Any:
    """The value the environment gives `option`, or `default`; SettingError naming the variable."""
    setting = BY_OPTION[option]
    text = environ.get(setting.variable)
    if text is None:
        return default
    try:
        return setting.parse(text)
    except ValueError as error:
        raise SettingError(f"{setting.variable}: {error}") from None


def config_from_environment(
    environ: Mapping[str, str], base: AgentConfig | None = None
) -> AgentConfig:
    """`base` (or the defaults) with every option the environment sets."""
    from inspector.agent.probe import AgentConfig

    config = base or AgentConfig()
    changes = {
        setting.field: from_environment(setting.option, environ, None)
        for setting in SETTINGS
        if setting.variable in environ
    }
    return dataclasses.replace(config, **changes)


def enabled(environ: Mapping[str, str]) -> bool:
    """False when ``INSPECTOR_ENABLED`` says no; an unreadable value is an error."""
    text = environ.get(ENV_ENABLED)
    if text is None:
        return True
    try:
        return parse_bool(text) if text.strip() else True
    except ValueError as error:
        raise SettingError(f"{ENV_ENABLED}: {error}") from None

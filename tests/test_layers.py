"""The layers, enforced: every import in the package, read from the source, against the contract.

The agent runs inside someone else's server, so it may not pull in the client side; the
diagnosis is pure rules over the model; only the UI may load Textual; the commands load what
they need when they run, so `inspector --help` and `dump` stay quick. Imports inside functions
count as much as those at the top (they run too), except where a rule is about what loads at
import time.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "inspector"
THIRD_PARTY_UI = ("textual", "rich")
SHARED = (
    "inspector.model",
    "inspector.codec",
    "inspector.protocol",
    "inspector.escape",
    "inspector.addresses",
    "inspector.frame_kinds",
    "inspector.durations",
    "inspector.plurals",
)
"""Stdlib-only modules both sides may use."""


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    at_top: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[Import]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from inspector.agent import probes` imports the submodule when there is one.
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        at_top = node.col_offset == 0
        found.extend(Import(name, target, node.lineno, at_top) for target in targets)
    return found


ALL_IMPORTS = [item for path in sorted(PACKAGE.rglob("*.py")) for item in imports_of(path)]


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in ALL_IMPORTS
        if within(i.importer, importers) and within(i.imported, forbidden)
    ]


def test_the_agent_imports_no_client_side_module_and_no_ui_library() -> None:
    forbidden = (
        "inspector.client",
        "inspector.diagnose",
        "inspector.render",
        "inspector.tui",
        "inspector.commands",
        "inspector.demo",
        "inspector.cli",
        *THIRD_PARTY_UI,
    )
    assert violations(("inspector.agent",), forbidden) == []


def test_the_client_never_imports_the_agent_or_the_ui() -> None:
    forbidden = ("inspector.agent", "inspector.tui", "inspector.commands", *THIRD_PARTY_UI)
    assert violations(("inspector.client",), forbidden) == []


def test_the_ui_never_imports_the_agent() -> None:
    """The UI talks to agents over their socket only, like every other client."""
    assert violations(("inspector.tui", "inspector.render"), ("inspector.agent",)) == []


PURE_SHARED = (
    "inspector.model",
    "inspector.frame_kinds",
    "inspector.durations",
    "inspector.plurals",
)
"""The shared modules that are pure functions over data: the diagnosis may use them."""


def test_the_diagnosis_imports_only_the_model_and_the_pure_shared_modules() -> None:
    wrong = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in ALL_IMPORTS
        if within(i.importer, ("inspector.diagnose",))
        and i.imported.startswith("inspector")
        and not within(i.imported, ("inspector.diagnose", *PURE_SHARED))
        and i.imported != "inspector"
    ]
    assert wrong == []


def test_only_the_ui_imports_textual_or_rich() -> None:
    wrong = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in ALL_IMPORTS
        if within(i.imported, THIRD_PARTY_UI) and not within(i.importer, ("inspector.tui",))
    ]
    assert wrong == []


def test_the_text_renderers_import_only_the_model_the_escape_and_the_pure_shared() -> None:
    allowed = ("inspector.render", "inspector.escape", "inspector.diagnose", *PURE_SHARED)
    wrong = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in ALL_IMPORTS
        if within(i.importer, ("inspector.render",))
        and i.imported.startswith("inspector.")
        and not within(i.imported, allowed)
    ]
    assert wrong == []


@pytest.mark.parametrize("module", SHARED)
def test_the_shared_modules_import_only_each_other(module: str) -> None:
    wrong = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in ALL_IMPORTS
        if i.importer == module
        and i.imported.startswith("inspector.")
        and not within(i.imported, SHARED)
    ]
    assert wrong == []


def test_the_commands_load_the_rest_of_the_package_only_when_they_run() -> None:
    light = ("inspector.errors", "inspector.commands", "inspector.escape", "inspector.addresses")
    wrong = [
        f"{i.importer}:{i.line} imports {i.imported} at import time"
        for i in ALL_IMPORTS
        if within(i.importer, ("inspector.commands", "inspector.cli"))
        and i.at_top
        and i.imported.startswith("inspector.")
        and not within(i.imported, light)
        and i.imported != "inspector.__version__"
    ]
    assert wrong == []


def test_the_walk_sees_the_imports_it_checks() -> None:
    """The contracts above would pass vacuously if the walk found nothing."""
    pairs = {(i.importer, i.imported) for i in ALL_IMPORTS}
    assert ("inspector.protocol", "inspector.model") in pairs
    assert any(
        i.importer.startswith("inspector.tui") and i.imported == "textual.app" for i in ALL_IMPORTS
    )
    assert any(not i.at_top for i in ALL_IMPORTS if i.importer == "inspector.commands.dump")

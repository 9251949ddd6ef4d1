"""Provides InspectorCommands, the inspector's commands in the command palette (ctrl+p).

A Textual command `Provider` beside Textual's own (theme, keys, quit), installed through
`InspectorApp.COMMANDS`: every command runs an app action that a key also runs, so the palette
is a way to find the keys, not a second set of behaviours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from inspector.tui.content import palette_text

if TYPE_CHECKING:
    from inspector.tui.app import InspectorApp


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    """Read as markup by the palette: target text in it goes through `palette_text`."""
    run: Callable[[], object]


def commands(app: InspectorApp) -> Iterator[Command]:
    """The commands, in the order the palette lists them; worker ones only in a worker group."""
    for number, tab in enumerate(app.tabs, start=1):
        yield Command(
            f"Show {tab.title}",
            f"Switch to the {tab.title} view ({number})",
            partial(app.action_show_view, tab.id),
        )
    yield Command(
        "Pause / resume", "Stop or restart polling the target (p)", app.action_toggle_pause
    )
    yield Command(
        "Save snapshot",
        "Write the data on screen as JSON in the current directory (s)",
        app.action_save,
    )
    yield Command("Copy location", "Copy the highlighted file:line (c)", app.action_copy_location)
    yield Command(
        "Open in editor",
        "Open the highlighted file:line in $VISUAL / $EDITOR (e)",
        app.action_open_in_editor,
    )
    yield Command(
        "Fold library frames" if app.all_frames else "Show every frame",
        "Stacks and tracebacks: only your code, or every frame (f)",
        app.action_toggle_frames,
    )
    yield Command(
        "Cancel task", "Cancel the selected task, after a confirmation (x)", app.action_cancel_task
    )
    roster = app.roster
    if roster is not None:
        yield Command(
            "Next worker", "Show the next worker of the server (w)", app.action_next_worker
        )
        total = len(roster.workers)
        for position, worker in enumerate(roster.workers, start=1):
            yield Command(
                f"Switch to worker {position}/{total} (pid {worker.pid})",
                f"Show worker pid {worker.pid}, agent {palette_text(worker.address)}",
                partial(app.switch_to_worker, worker),
            )
    yield Command("Poll faster", "Shorten the refresh interval (-)", app.action_faster)
    yield Command("Poll slower", "Lengthen the refresh interval (+)", app.action_slower)


class InspectorCommands(Provider):
    """Offers `commands` to the palette: all of them before anything is typed, then the ones
    that match what is typed, best first."""

    def _commands(self) -> list[Command]:
        from inspector.tui.app import InspectorApp  # the app module imports this one

        app = self.app
        assert isinstance(app, InspectorApp)
        return list(commands(app))

    async def discover(self) -> Hits:
        for command in sorted(self._commands(), key=lambda command: command.title):
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run, help=command.help)

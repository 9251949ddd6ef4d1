"""Provides the one way the UI puts text from the target on screen: escaped, never read as markup.

Task names, paths, messages and command lines come from the inspected process. Pasted into a
markup string they would be parsed: Textual's `escape` leaves `[B]`, `[$text-error]` or
`[ bold]` as tags, and a value that ends in a backslash escapes the tag after it, so a task
named `[bold]` could restyle a line or crash it with a MarkupError. Here our markup is only ever
a literal template; the target's values are filled in as plain text through Textual's template
variables (`$name`), which are substituted after the markup is parsed, and every value first
goes through `printable`, which shows terminal escapes, bidi controls and lone surrogates as
escapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content

from inspector.escape import printable

__all__ = ["Multiline", "markup", "palette_text", "plain", "printable"]


@dataclass(frozen=True)
class Multiline:
    """A value the pane lays out on several lines, keeping its line breaks (an exception's
    message); every other value is shown on one line."""

    text: str


def markup(template: str, /, **values: str | int | float | Multiline) -> Content:
    """Content from `template`, our own markup, with each `$name` replaced by the value of
    `name` as plain, escaped text: `markup("[b]$name[/b] #$id", name=task.name, id=task.id)`."""
    return Content.from_markup(
        template,
        **{
            name: printable(value.text, multiline=True)
            if isinstance(value, Multiline)
            else printable(str(value))
            for name, value in values.items()
        },
    )


def plain(text: str, style: str = "") -> Content:
    """Text from the target, escaped and unstyled (or all in `style`)."""
    shown = printable(text)
    return Content.styled(shown, style) if style else Content(shown)


def palette_text(text: str) -> str:
    """Text for the command palette, which reads its entries as markup: escaped, every `[`
    made literal. Only for the end of an entry: a backslash there escapes no tag."""
    return printable(text).replace("[", "\\[")

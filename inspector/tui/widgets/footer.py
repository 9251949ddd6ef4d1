"""Provides InspectorFooter: Textual's footer with the way out always on screen.

The footer lists the focused widget's keys first and the app's last, so at 80 columns a busy
view pushes "q Quit" off the right edge. Here quit comes first; the rest keep their order.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class InspectorFooter(Footer):
    """The footer, quit first. (No binding groups here: the keys are flat children.)"""

    def compose(self) -> ComposeResult:
        children = list(super().compose())
        children.sort(
            key=lambda child: not (isinstance(child, FooterKey) and child.action == "quit")
        )
        yield from children

"""Plain-text renderings of snapshots, for `inspector dump` and anything that prints.

No Textual, no Rich: only the model and the standard library.
"""

from __future__ import annotations

from inspector.render.text import render_snapshot

__all__ = ["render_snapshot"]

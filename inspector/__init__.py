"""uvicorn-inspector: see what a running uvicorn server's event loop, tasks and requests are doing.

This module imports nothing: the agent imports it inside someone else's server.
"""

from __future__ import annotations

__version__ = "0.1.0"

"""Writes docs/screenshot.svg: the main view on the blocked-loop recording, 120x36.

    python tests/tui/make_screenshot.py

Uses the real diagnosis rules (the snapshot tests use fixed findings instead).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from inspector.tui.app import make_app  # noqa: E402
from tests.tui.conftest import FROZEN_NOW, until_applied  # noqa: E402
from tests.tui.fakes import FakeSource, load  # noqa: E402
from tests.tui.test_snapshots import settle, with_vitals  # noqa: E402


async def main() -> int:
    app = make_app(
        FakeSource([load("blocked")]), clock=lambda: FROZEN_NOW, interval=5.0, vitals=None
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await until_applied(pilot)
        with_vitals(app)
        await settle(pilot)
        target = ROOT / "docs" / "screenshot.svg"
        target.parent.mkdir(exist_ok=True)
        app.save_screenshot(filename=target.name, path=str(target.parent))
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Newsletter service: a digest builder runs in the background after each subscription change.

Faults: the digest builder logs its template error with exc_info and carries on; the preference
parser drops any malformed preference in a bare `except Exception as exc: return None`.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI, Request

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(
    calls=(post("/subscriptions/dev-weekly?prefs=daily,html,size:xl"),),
    min_python=(3, 12),
    run_args=("--trace-exceptions",),
)

log = logging.getLogger(__name__)
app = FastAPI()
TEMPLATES = {"dev-weekly": "Hello {name}, here is {digest}"}


def render_digest(newsletter: str) -> str:
    return TEMPLATES[newsletter].format(name="reader")  # bug: logged-error


def build_digest(newsletter: str) -> None:
    try:
        render_digest(newsletter)
    except (KeyError, IndexError):
        log.error("digest for %s could not be rendered", newsletter, exc_info=True)


def parse_size(value: str) -> int | None:
    try:
        return int(value.removeprefix("size:"))
    except Exception as exc:  # noqa: F841  # bug: exception-swallowed
        return None


def preferences(request: Request) -> dict[str, object]:
    raw = request.query_params.get("prefs", "")
    parts = raw.split(",")
    return {"flags": [p for p in parts if ":" not in p], "size": parse_size(parts[-1])}


@app.post("/subscriptions/{newsletter}")
async def subscribe(
    newsletter: str,
    background_tasks: BackgroundTasks,
    prefs: Annotated[dict[str, object], Depends(preferences)],
) -> dict[str, object]:
    background_tasks.add_task(build_digest, newsletter)
    return {"newsletter": newsletter, "prefs": prefs}

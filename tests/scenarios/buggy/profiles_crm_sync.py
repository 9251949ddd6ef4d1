"""Profile service: profile edits are mirrored to the CRM and the search index.

Faults: the CRM push is wrapped in `contextlib.suppress(Exception)`, so every failed push vanishes;
the search indexer drops its errors in a bare `except Exception: pass`; the avatar cache cleanup
suppresses the KeyError of a profile that has none.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import suppress

from fastapi import FastAPI
from pydantic import BaseModel

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(
        post("/profiles/p-9", '{"name": "Grace", "email": "grace@example"}'),
        get("/profiles/p-9"),
    ),
    min_python=(3, 12),
    run_args=("--trace-exceptions",),
)

app = FastAPI()
profiles: dict[str, dict[str, str]] = {}
avatar_cache: dict[str, bytes] = {}


class ProfileIn(BaseModel):
    name: str
    email: str


class CrmError(Exception):
    pass


class CrmClient:
    async def upsert_contact(self, profile_id: str, email: str) -> None:
        await asyncio.sleep(0.01)
        if "." not in email.rsplit("@", 1)[-1]:
            raise CrmError(f"CRM rejected {email!r}: invalid domain")


class SearchIndexer:
    def __init__(self) -> None:
        self.documents: dict[str, str] = {}

    def index(self, profile_id: str, profile: dict[str, str]) -> None:
        try:
            self.documents[profile_id] = profile["name"] + " " + profile["display_name"]
        except Exception:  # bug: exception-swallowed
            pass


crm = CrmClient()
indexer = SearchIndexer()


async def mirror(profile_id: str, profile: dict[str, str]) -> None:
    with contextlib.suppress(Exception):  # bug: exception-swallowed
        await crm.upsert_contact(profile_id, profile["email"])
    indexer.index(profile_id, profile)


def forget_avatar(profile_id: str) -> None:
    with suppress(KeyError):  # bug: exception-swallowed
        del avatar_cache[profile_id]


@app.post("/profiles/{profile_id}")
async def save_profile(profile_id: str, body: ProfileIn) -> dict[str, str]:
    profiles[profile_id] = body.model_dump()
    forget_avatar(profile_id)
    await mirror(profile_id, profiles[profile_id])
    return {"id": profile_id}


@app.get("/profiles/{profile_id}")
async def read_profile(profile_id: str) -> dict[str, str]:
    return profiles.get(profile_id, {})

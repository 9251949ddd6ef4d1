"""An app whose own import raises: the settings it reads at import time are wrong."""

from __future__ import annotations

from fastapi import FastAPI


def load_settings() -> dict[str, int]:
    raw = {"workers": "four"}
    return {"workers": int(raw["workers"])}  # RAISES-LINE


settings = load_settings()
app = FastAPI()

"""What the pharmacy package contributes to the app: the pharmacist's pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from fse.web.templates import add_directory
from pharmacy.pages import router


def install(app: FastAPI) -> None:
    add_directory(Path(__file__).parent / "templates")
    app.include_router(router)
    app.state.subscription_topics.offer("Claim", ("status",))  # dispensed, reversed

"""What the prescriber package contributes to the app: the doctor's pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from fse.web.templates import add_directory
from prescriber.pages import router


def install(app: FastAPI) -> None:
    add_directory(Path(__file__).parent / "templates")
    app.include_router(router)

"""Where the reference data comes from, as the ``/a-propos`` page says it: each licence asks for
its attribution wherever the data is shown (the ODbL of the CNOPS medicines list does). Features
add the sources of the data they load (``app.state.data_sources``); the kernel names none."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI


@dataclass(frozen=True)
class DataSource:
    name: str
    attribution: str
    """The notice the licence asks for, as is."""
    licence: str
    licence_url: str | None = None
    source_url: str | None = None
    note: str = ""
    """What the platform changed or how to read it (e.g. "prix 2014")."""


def add_source(app: FastAPI, source: DataSource) -> None:
    known = app.state.data_sources
    if source not in known:
        known.append(source)

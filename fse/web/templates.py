"""The one Jinja2 environment of the web UI (autoescaped)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from fse.web.formats import FILTERS

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.filters.update(FILTERS)


def add_directory(directory: Path) -> None:
    """Let a feature package serve its own templates (searched after the kernel's)."""
    loader = TEMPLATES.env.loader
    paths = loader.searchpath  # type: ignore[union-attr]
    if str(directory) not in paths:
        paths.append(str(directory))

"""Landing page and the OpenAPI docs served from vendored assets (the network may be closed).

The web UI's own stylesheets and scripts are files in ``static/`` (the Content-Security-Policy
allows no inline code); so is the script starting Swagger UI, which fastapi would inline.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from fse.web import login, password
from fse.web.deps import PageRefused, answer_refusal
from fse.web.state import data_sources_of
from fse.web.templates import TEMPLATES

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "home.html", {"title": "Plateforme FSE"})


@router.get("/a-propos", response_class=HTMLResponse)
async def about(request: Request) -> HTMLResponse:
    """What the platform is and where its reference data comes from, with the notices the data
    licences ask for (public, like the home page)."""
    context = {"title": "À propos", "sources": data_sources_of(request)}
    return TEMPLATES.TemplateResponse(request, "a_propos.html", context)


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """Browsers ask for it on every page whatever the ``<link>`` says: answered, never 404."""
    return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon")


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI, with paths rather than absolute URLs: behind a TLS proxy the page's scheme
    is the proxy's, which this server does not see."""
    app = request.app
    return TEMPLATES.TemplateResponse(
        request,
        "docs.html",
        {
            "title": "Plateforme FSE - API FHIR",
            "openapi_url": app.url_path_for("openapi"),
            "swagger_js": app.url_path_for("swagger", path="swagger-ui-bundle.js"),
            "swagger_css": app.url_path_for("swagger", path="swagger-ui.css"),
            "favicon": app.url_path_for("swagger", path="favicon-32x32.png"),
        },
    )


def mount(app: FastAPI) -> None:
    app.mount(
        "/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger"
    )
    app.mount("/static/fse", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    app.include_router(login.router)
    app.include_router(password.router)
    app.add_exception_handler(PageRefused, answer_refusal)

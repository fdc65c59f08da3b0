"""Landing page and the OpenAPI docs served from vendored assets (the network may be closed)."""

from __future__ import annotations

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from fse.web import login
from fse.web.templates import TEMPLATES

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "home.html", {"title": "Plateforme FSE"})


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=str(request.url_for("openapi")),
        title="Plateforme FSE - API FHIR",
        swagger_js_url=str(request.url_for("swagger", path="swagger-ui-bundle.js")),
        swagger_css_url=str(request.url_for("swagger", path="swagger-ui.css")),
        swagger_favicon_url=str(request.url_for("swagger", path="favicon-32x32.png")),
    )


def mount(app: FastAPI) -> None:
    app.mount(
        "/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger"
    )
    app.include_router(router)
    app.include_router(login.router)

"""What the pages take from the app, typed: the kernel's parts the app factory keeps on
``app.state`` (settings, engine, FHIR service, runtime services, the platform's key, the data
sources), each behind one function, so a page names what it uses and the type checker follows
it; ``app.state`` itself is untyped. Features keep their own parts the same way in their own
package (e.g. ``reimbursement/state.py``): the kernel names no feature.

Plain functions rather than ``Depends``: helpers and the FHIR operations (whose ``/fhir`` path
stays free of dependency injection) call them the same way the page routes do.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from fse.config import Settings
from fse.crypto.tokens import SigningKey
from fse.fhir_api.interactions import FhirService
from fse.runtime import Runtime
from fse.web.sources import DataSource


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def engine_of(request: Request) -> AsyncEngine:
    return request.app.state.engine


def fhir_of(request: Request) -> FhirService:
    return request.app.state.fhir


def runtime_of(request: Request) -> Runtime:
    """The cache, rate limiter and event stream (in-process or Redis)."""
    return request.app.state.runtime


def platform_key_of(request: Request) -> SigningKey:
    """The platform's own signing key (receipts, access codes): not a professional's key,
    which a session opens (``fse.web.deps.signing_key_of``)."""
    return request.app.state.signing_key


def data_sources_of(request: Request) -> list[DataSource]:
    """The reference data's sources, as features added them (``fse.web.sources.add_source``)."""
    return request.app.state.data_sources
